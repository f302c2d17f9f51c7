"""A model_dir is keyed by what its checkpoints depend on: another dataset, image size or network
is refused with one line naming both values, never resumed or silently reused."""

import json

import pytest

from tests.conftest import tiny_config
from tfssl.errors import ConfigError
from tfssl.train.rundir import RUN_KEY_FIELDS, RunDirectory, run_key


def other_value(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value}_other"
    return value + 1


@pytest.fixture
def held(tmp_path):
    """A model_dir holding the flags.json of a finished pretraining run."""
    cfg = tiny_config(mode="pretrain", dataset="mnist", image_size=0)
    RunDirectory(str(tmp_path)).write_flags(cfg.to_dict(), "pretrain")
    return RunDirectory(str(tmp_path)), cfg


def test_the_key_covers_data_and_network():
    assert {"dataset", "image_size", "resnet_depth", "width_multiplier", "sk_ratio"} <= set(
        RUN_KEY_FIELDS
    )
    assert {"proj_head_mode", "proj_out_dim", "num_proj_layers", "architecture"} <= set(
        RUN_KEY_FIELDS
    )


@pytest.mark.parametrize("field", RUN_KEY_FIELDS)
def test_each_mismatch_is_one_line_naming_both_values(held, field):
    run_dir, cfg = held
    key = run_key(cfg)
    old, new = key[field], other_value(key[field])
    with pytest.raises(ConfigError) as error:
        run_dir.check_job("pretrain", {**key, field: new})
    message = str(error.value)
    assert f"--{field}={old}, not --{field}={new}" in message and "\n" not in message


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"dataset": "fashion_mnist"}, "--dataset=mnist, not --dataset=fashion_mnist"),
        ({"image_size": 32}, "--image_size=0, not --image_size=32"),
        ({"width_multiplier": 0.5}, "--width_multiplier=0.0625, not --width_multiplier=0.5"),
    ],
)
def test_dataset_image_size_and_network_from_a_config(held, changes, expected):
    run_dir, cfg = held
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        run_dir.check_job("pretrain", run_key(cfg.replace(**changes)))


def test_the_same_key_resumes_and_older_flags_files_are_not_over_read(held):
    run_dir, cfg = held
    run_dir.check_job("pretrain", run_key(cfg.replace(train_steps=99, learning_rate=0.1)))
    flags = json.load(open(run_dir.file("flags.json")))
    del flags["sk_ratio"]  # a flags.json written before the field existed
    json.dump(flags, open(run_dir.file("flags.json"), "w"))
    run_dir.check_job("pretrain", run_key(cfg.replace(sk_ratio=0.0625)))
    with pytest.raises(ConfigError, match="holds a pretrain run, not finetune"):
        run_dir.check_job("finetune", run_key(cfg))
