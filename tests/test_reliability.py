"""Non-finite losses, concurrent runs and bad input never lose work."""

import hashlib
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, class_pattern_images, tiny_config, write_image_folder
from tfssl.errors import ConfigError, NonFiniteLossError
from tfssl.methods.simclr import SimCLRPretrain
from tfssl.train import launch, runtime
from tfssl.train.rundir import RunDirectory

sys.path.insert(0, REPO)
import run  # noqa: E402


class NaNAtStep3(SimCLRPretrain):
    """SimCLR whose loss is NaN at the third step (step index 2)."""

    def loss(self, batch):
        loss, metrics = super().loss(batch)
        return tf.where(tf.equal(self.step, 2), tf.constant(np.nan), loss), metrics


def fit(cfg, method_class):
    from tfssl.data.pipeline import DataBundle
    from tfssl.train.distribute import make_strategy
    from tfssl.train.trainer import Trainer

    runtime.setup_runtime(cfg)
    trainer = Trainer(cfg, method_class, DataBundle(cfg, cfg.run_dir), make_strategy("one_device"))
    return trainer, trainer.fit()


def test_nan_stops_with_the_step_and_keeps_the_last_good_checkpoint(gray_folder, tmp_path):
    cfg = tiny_config(
        mode="pretrain",
        dataset=f"folder:{gray_folder}",
        model_dir=str(tmp_path),
        train_steps=6,
        checkpoint_steps=2,
        steps_per_loop=2,
        eval_steps=1,
    )
    with pytest.raises(NonFiniteLossError, match="NaN/Inf at step 3"):
        fit(cfg, NaNAtStep3)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt-2"))
    for name, _ in tf.train.list_variables(str(tmp_path / "ckpt-2")):
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), name


def test_nan_step_can_be_skipped(gray_folder, tmp_path):
    cfg = tiny_config(
        mode="pretrain",
        dataset=f"folder:{gray_folder}",
        model_dir=str(tmp_path),
        train_steps=4,
        steps_per_loop=4,
        eval_steps=1,
        skip_nonfinite_steps=True,
    )
    trainer, result = fit(cfg, NaNAtStep3)
    assert result["global_step"] == 4
    assert result["train"]["nonfinite_steps"] == pytest.approx(0.25)
    assert all(np.all(np.isfinite(v.numpy())) for v in trainer.method.model.variables)


def test_second_run_on_a_live_model_dir_is_refused(gray_folder, tmp_path, capsys):
    holder = RunDirectory(str(tmp_path)).open("pretrain")
    try:
        code = run.main(
            [
                "run.py",
                f"--dataset=folder:{gray_folder}",
                f"--model_dir={tmp_path}",
                "--train_steps=1",
            ]
        )
        assert code == 2
        assert "is in use by another live run" in capsys.readouterr().err
    finally:
        holder.close()
    with pytest.raises(ConfigError, match="in use"):
        first = RunDirectory(str(tmp_path)).open("pretrain")
        try:
            RunDirectory(str(tmp_path)).open("pretrain")
        finally:
            first.close()


def digest(directory):
    return {
        name: hashlib.sha256(open(os.path.join(directory, name), "rb").read()).hexdigest()
        for name in sorted(os.listdir(directory))
        if os.path.isfile(os.path.join(directory, name))
    }


@pytest.fixture(scope="module")
def trained_dir(gray_folder, tmp_path_factory):
    directory = tmp_path_factory.mktemp("trained")
    launch.train(
        tiny_config(
            mode="pretrain",
            dataset=f"folder:{gray_folder}",
            model_dir=str(directory),
            train_steps=2,
            eval_steps=1,
        )
    )
    return str(directory)


@pytest.fixture(scope="module")
def bad_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    images, labels = class_pattern_images(num_classes=2, per_class=3)
    folders = {}
    for name in ("empty_class", "corrupt", "truncated", "mixed"):
        folders[name] = write_image_folder(str(root / name), images, labels)
    os.makedirs(root / "empty_class" / "class9")
    (root / "corrupt" / "class0" / "notes.png").write_bytes(b"this is not an image")
    png = open(root / "truncated" / "class1" / "3.png", "rb").read()
    (root / "truncated" / "class1" / "3.png").write_bytes(png[: len(png) // 2])
    rgb, _ = class_pattern_images(num_classes=1, per_class=1, channels=3)
    write_image_folder(str(root / "mixed"), rgb, [1])
    os.makedirs(root / "no_classes")
    ten_class, ten_labels = class_pattern_images(num_classes=10, per_class=2)
    folders["ten_classes"] = write_image_folder(str(root / "ten"), ten_class, ten_labels)
    folders["no_classes"] = str(root / "no_classes")
    return folders


BAD_RUNS = [
    (["--dataset=folder:{empty_class}"], "class9 holds no images"),
    (["--dataset=folder:{corrupt}"], "notes.png"),
    (["--dataset=folder:{truncated}"], "3.png"),
    (["--dataset=folder:{mixed}"], "mixes grayscale"),
    (["--dataset=folder:{no_classes}"], "no class sub-folders"),
    (["--dataset={gray}", "--train_split=validation"], "no split 'validation'"),
    (["--dataset={gray}", "--eval_split=val[:10%]"], "no split 'val'"),
    (["--dataset={gray}", "--mode=supervised", "--num_labels=6"], "not divisible by the 4 classes"),
    (["--dataset={gray}", "--mode=supervised", "--num_labels=400"], "larger than the 64 examples"),
    (["--dataset={gray}", "--mode=supervised", "--num_labels=80"], "larger than the 64 examples"),
    (["--dataset={gray}", "--mode=finetune", "--checkpoint={trained}/ckpt-99"], "does not exist"),
    (
        ["--dataset={gray}", "--mode=distill", "--teacher=/no/teacher"],
        "--teacher=/no/teacher does not exist",
    ),
    (
        [
            "--dataset=folder:{ten_classes}",
            "--eval_split=train",
            "--mode=distill",
            "--teacher={trained_ft}",
        ],
        "predicts 4 classes but folder:",
    ),
    (
        ["--dataset=folder:{ten_classes}"],
        "(e.g. --train_split=train[:80%] --eval_split=train[80%:])",
    ),
    (["--dataset={gray}", "--mode=eval", "--checkpoint=/no/run"], "does not exist"),
    (["--dataset={gray}", "--mode=export", "--checkpoint=/no/run"], "does not exist"),
    (["--dataset=synthetic:8x8x5"], "1 or 3 channels"),
    # The trained pretrain run's model_dir, with another dataset, image size or network.
    (
        ["--dataset=folder:{ten_classes}", "--eval_split=train"],
        "holds a run with --dataset=folder:",
    ),
    (
        ["--dataset={gray}", "--image_size=24"],
        "holds a run with --image_size=0, not --image_size=24",
    ),
    (["--dataset={gray}", "--resnet_depth=34"], "--resnet_depth=18, not --resnet_depth=34"),
]


@pytest.mark.parametrize("args,message", BAD_RUNS, ids=[" ".join(a) for a, _ in BAD_RUNS])
def test_bad_runs_leave_existing_checkpoints_untouched(
    args, message, trained_dir, trained_ft, bad_folders, gray_folder, capsys, tmp_path
):
    """Pretrain cases run on the model_dir of a trained pretrain run; the others on a new one."""
    before = digest(trained_dir)
    names = dict(
        bad_folders, gray=f"folder:{gray_folder}", trained=trained_dir, trained_ft=trained_ft
    )
    model_dir = tmp_path if any(a.startswith("--mode=") for a in args) else trained_dir
    code = run.main(
        [
            "run.py",
            *[a.format(**names) for a in args],
            f"--model_dir={model_dir}",
            "--train_steps=1",
            "--train_batch_size=16",
            "--width_multiplier=0.0625",
            "--proj_out_dim=16",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert digest(trained_dir) == before


@pytest.fixture(scope="module")
def trained_ft(trained_dir, gray_folder, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ft")
    launch.train(
        tiny_config(
            mode="finetune",
            dataset=f"folder:{gray_folder}",
            checkpoint=trained_dir,
            model_dir=str(directory),
            train_steps=1,
            eval_steps=1,
        )
    )
    return str(directory)
