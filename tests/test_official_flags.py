"""The official SimCLR command lines: every flag of google-research/simclr tf2/run.py is accepted
with its official meaning, and the official README's lines parse into the Config they imply."""

import dataclasses
import os
import sys

import pytest

from tests.conftest import REPO
from tfssl import jobs
from tfssl.config import Config

sys.path.insert(0, REPO)
import run  # noqa: E402

#: Every flag google-research/simclr tf2/run.py defines (commit 383d414), and the two that the
#: README's fine-tuning lines take from the TF1 run.py.
OFFICIAL_TF2_FLAGS = """learning_rate learning_rate_scaling warmup_epochs weight_decay
batch_norm_decay train_batch_size train_split train_epochs train_steps eval_steps eval_batch_size
checkpoint_epochs checkpoint_steps eval_split dataset cache_dataset mode train_mode
lineareval_while_pretraining checkpoint zero_init_logits_layer fine_tune_after_block master
model_dir data_dir use_tpu tpu_name tpu_zone gcp_project optimizer momentum eval_name
keep_checkpoint_max keep_hub_module_max temperature hidden_norm proj_head_mode proj_out_dim
num_proj_layers ft_proj_selector global_bn width_multiplier resnet_depth sk_ratio se_ratio
image_size color_jitter_strength use_blur""".split()
README_TF1_FLAGS = ["variable_schema", "train_summary_steps"]

# The official README's lines (tf2/README.md and README.md), with --dataset changed to MNIST and
# the shell variables filled in.
CIFAR_PRETRAIN = """--train_mode=pretrain --train_batch_size=512 --train_epochs=1000
--learning_rate=1.0 --weight_decay=1e-4 --temperature=0.5 --dataset=mnist --image_size=32
--eval_split=test --resnet_depth=18 --use_blur=False --color_jitter_strength=0.5
--model_dir=/tmp/simclr_test --use_tpu=False"""
IMAGENET_PRETRAIN = """--train_mode=pretrain --train_batch_size=4096 --train_epochs=100
--temperature=0.1 --learning_rate=0.075 --learning_rate_scaling=sqrt --weight_decay=1e-4
--dataset=mnist --image_size=224 --eval_split=validation --data_dir=gs://b/data
--model_dir=gs://b/model --use_tpu=True --tpu_name=my-tpu --train_summary_steps=0"""
CIFAR_LINEAR_EVAL = """--mode=train_then_eval --train_mode=finetune --fine_tune_after_block=4
--zero_init_logits_layer=True --variable_schema=(?!global_step|(?:.*/|^)Momentum|head)
--global_bn=False --optimizer=momentum --learning_rate=0.1 --weight_decay=0.0 --train_epochs=100
--train_batch_size=512 --warmup_epochs=0 --dataset=mnist --image_size=32 --eval_split=test
--resnet_depth=18 --checkpoint=/tmp/simclr_test --model_dir=/tmp/simclr_test_ft --use_tpu=False"""
IMAGENET_1PCT = """--mode=train_then_eval --train_mode=finetune --fine_tune_after_block=-1
--zero_init_logits_layer=True --variable_schema=(?!global_step|(?:.*/|^)Momentum|head_supervised)
--global_bn=True --optimizer=lars --learning_rate=0.005 --learning_rate_scaling=sqrt
--weight_decay=0 --train_epochs=60 --train_batch_size=1024 --warmup_epochs=0 --dataset=mnist
--image_size=224 --eval_split=validation --data_dir=gs://b/data --model_dir=gs://b/ft
--checkpoint=gs://b/pre --use_tpu=True --tpu_name=my-tpu --train_summary_steps=0
--num_proj_layers=3 --ft_proj_selector=1"""


def parse(capsys, monkeypatch, line):
    """(Config, notes) that run.py hands to the job for a command line; the job does not run."""
    seen = {}
    monkeypatch.setattr(jobs, "run", lambda cfg, notes=(): seen.update(cfg=cfg, notes=notes))
    code = run.main(["run.py", *line.split()])
    err = capsys.readouterr().err.strip()
    assert code == 0, err
    return seen["cfg"], list(seen["notes"])


def test_every_official_flag_is_a_tfssl_flag():
    fields = {f.name for f in dataclasses.fields(Config)}
    assert set(OFFICIAL_TF2_FLAGS + README_TF1_FLAGS) <= fields
    assert len(OFFICIAL_TF2_FLAGS) == 48


def test_cifar10_pretraining_line(capsys, monkeypatch):
    cfg, notes = parse(capsys, monkeypatch, CIFAR_PRETRAIN)
    given = dict(
        job="pretrain",
        ssl_method="simclr",
        train_batch_size=512,
        train_epochs=1000,
        learning_rate=1.0,
        weight_decay=1e-4,
        temperature=0.5,
        dataset="mnist",
        image_size=32,
        eval_split="test",
        resnet_depth=18,
        use_blur=False,
        color_jitter_strength=0.5,
        model_dir="/tmp/simclr_test",
        strategy="auto",
    )
    # What the line leaves out means tf2/run.py's defaults (and its fixed crop and flip).
    official = dict(
        width_multiplier=1.0,
        warmup_epochs=10.0,
        learning_rate_scaling="linear",
        optimizer="lars",
        momentum=0.9,
        proj_head_mode="nonlinear",
        num_proj_layers=3,
        proj_out_dim=128,
        ft_proj_selector=0,
        lineareval_while_pretraining=True,
        global_bn=True,
        hidden_norm=True,
        batch_norm_decay=0.9,
        sk_ratio=0.0,
        cache_dataset=False,
        checkpoint_epochs=1.0,
        crop_min_area=0.08,
        use_flip=True,
    )
    for name, value in {**given, **official}.items():
        assert getattr(cfg, name) == value, name
    assert any("--use_tpu=False has no effect" in n for n in notes)
    assert any("official tf2/run.py defaults" in n for n in notes)


def test_imagenet_pretraining_line_on_a_tpu(capsys, monkeypatch):
    cfg, notes = parse(capsys, monkeypatch, IMAGENET_PRETRAIN)
    assert (cfg.job, cfg.strategy, cfg.tpu_name) == ("pretrain", "tpu", "my-tpu")
    assert (cfg.learning_rate, cfg.learning_rate_scaling, cfg.train_batch_size) == (
        0.075,
        "sqrt",
        4096,
    )
    assert (cfg.resnet_depth, cfg.width_multiplier, cfg.image_size) == (50, 1.0, 224)
    assert cfg.train_summary_steps == 0 and cfg.data_dir == "gs://b/data"
    assert not any("has no effect" in n for n in notes)


def test_cifar10_linear_eval_line(capsys, monkeypatch):
    cfg, _ = parse(capsys, monkeypatch, CIFAR_LINEAR_EVAL)
    expected = dict(
        job="finetune",
        fine_tune_after_block=4,
        zero_init_logits_layer=True,
        variable_schema="(?!global_step|(?:.*/|^)Momentum|head)",
        global_bn=False,
        optimizer="momentum",
        learning_rate=0.1,
        weight_decay=0.0,
        train_epochs=100,
        train_batch_size=512,
        warmup_epochs=0.0,
        image_size=32,
        eval_split="test",
        checkpoint="/tmp/simclr_test",
        model_dir="/tmp/simclr_test_ft",
        strategy="auto",
        ft_proj_selector=0,  # official default: the linear head reads the ResNet's output
        proj_layers_kept=0,
        checkpoint_epochs=1.0,
        learning_rate_scaling="linear",
        crop_min_area=0.08,
        use_flip=True,
    )
    for name, value in expected.items():
        assert getattr(cfg, name) == value, name


def test_imagenet_one_percent_fine_tuning_line(capsys, monkeypatch):
    cfg, _ = parse(capsys, monkeypatch, IMAGENET_1PCT)
    expected = dict(
        job="finetune",
        fine_tune_after_block=-1,
        variable_schema="(?!global_step|(?:.*/|^)Momentum|head_supervised)",
        global_bn=True,
        optimizer="lars",
        learning_rate=0.005,
        learning_rate_scaling="sqrt",
        weight_decay=0.0,
        train_epochs=60,
        train_batch_size=1024,
        warmup_epochs=0.0,
        label_fraction=1.0,  # the official 1% is a dataset; here it is --label_fraction=0.01
        strategy="tpu",
        tpu_name="my-tpu",
        train_summary_steps=0,
        num_proj_layers=3,
        ft_proj_selector=1,
        proj_layers_kept=1,
    )
    for name, value in expected.items():
        assert getattr(cfg, name) == value, name


def test_tfssl_spelling_keeps_tfssl_defaults():
    cfg = Config.for_job({"mode": "finetune", "checkpoint": "runs/pre"})
    assert (cfg.optimizer, cfg.ft_proj_selector, cfg.width_multiplier) == ("momentum", 1, 0.25)
    assert Config.for_job({"train_mode": "finetune", "checkpoint": "x"}).job == "finetune"


def test_flags_without_effect_say_so_once_each(capsys, monkeypatch):
    _, notes = parse(
        capsys,
        monkeypatch,
        "--mode=pretrain --eval_name=ev --keep_hub_module_max=3 --tpu_zone=z --gcp_project=p "
        "--master=grpc://1.2.3.4:8470",
    )
    for flag in ("eval_name", "keep_hub_module_max", "tpu_zone", "gcp_project", "master"):
        assert sum(f"--{flag} has no effect" in n for n in notes) == 1, flag
    assert len(notes) == 5  # tfssl's own spelling: no note about official defaults


def test_tpu_flags_choose_the_tpu():
    cfg = Config.for_job({"use_tpu": True, "master": "grpc://10.0.0.2:8470", "tpu_zone": "z"})
    assert (cfg.strategy, cfg.tpu_name, cfg.tpu_zone) == ("tpu", "grpc://10.0.0.2:8470", "z")
    from tfssl.official_flags import notes

    assert notes(cfg, {"use_tpu": True, "tpu_zone": "z"}) == []


@pytest.mark.parametrize(
    "args,message",
    [
        (["--use_tpu", "--strategy=mirrored"], "--use_tpu=True asks for a TPU but"),
        (["--variable_schema=(head"], "is not a regular expression"),
        (["--train_summary_steps=-2"], "--train_summary_steps=-2 must be -1, 0 or positive"),
        (["--ft_proj_selector=-2"], "must be 0..num_proj_layers (or -1, the last)"),
    ],
)
def test_bad_official_flags_get_one_line(capsys, args, message):
    code = run.main(["run.py", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_tpu_zone_and_project_reach_the_resolver(monkeypatch):
    import tensorflow as tf

    from tfssl.errors import ConfigError
    from tfssl.train.distribute import make_strategy

    seen = {}

    def resolver(**kwargs):
        seen.update(kwargs)
        raise ValueError("no TPU here")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", resolver)
    with pytest.raises(ConfigError, match="found no TPU"):
        make_strategy("tpu", "my-tpu", "us-central1-b", "proj")
    assert seen == dict(tpu="my-tpu", zone="us-central1-b", project="proj")


def test_ft_proj_selector_minus_one_keeps_every_layer():
    cfg = Config.for_job({"mode": "finetune", "checkpoint": "x", "ft_proj_selector": -1})
    assert cfg.proj_layers_kept == cfg.num_proj_layers == 3


@pytest.mark.slow
def test_cifar10_pretraining_line_runs_two_steps(mnist_data_dir, tmp_path):
    """The official CIFAR-10 line on MNIST (28 px resized to 32) for two steps: the official
    ResNet-18 at width 1, batch 512, then the eval over the test split."""
    import json

    from tfssl.data import offline

    line = CIFAR_PRETRAIN.replace("/tmp/simclr_test", str(tmp_path / "run"))
    extra = [] if mnist_data_dir == offline.default_data_dir() else [f"--data_dir={mnist_data_dir}"]
    assert run.main(["run.py", *line.split(), "--train_steps=2", *extra]) == 0

    result = json.load(open(os.path.join(tmp_path, "run", "result.json")))
    flags = json.load(open(os.path.join(tmp_path, "run", "flags.json")))
    assert result["global_step"] == 2 and flags["width_multiplier"] == 1.0
    assert 0 <= result["eval"]["top_1_accuracy"] <= 1


@pytest.mark.slow
def test_train_summary_steps_writes_window_means(gray_folder, tmp_path):
    """--train_summary_steps=3 with 4-step loops: summaries at steps 3 and 6 only, each the mean of
    its three steps (the learning rate's is known in closed form)."""
    import numpy as np

    from tests.conftest import tiny_config
    from tfssl.train import launch
    from tfssl.train.summaries_io import read_scalars

    common = dict(
        mode="pretrain",
        dataset=f"folder:{gray_folder}",
        steps_per_loop=4,
        train_steps=7,
        eval_steps=1,
        warmup_epochs=0,
        learning_rate=0.5,
        width_multiplier=0.03125,
    )
    launch.train(tiny_config(**common, train_summary_steps=3, model_dir=str(tmp_path / "a")))
    logged = read_scalars(str(tmp_path / "a" / "train"))["train/learning_rate"]
    peak = 0.5 * 16 / 256
    rate = [peak * 0.5 * (1 + np.cos(np.pi * k / 7)) for k in range(7)]
    assert [step for step, _ in logged] == [3, 6]
    np.testing.assert_allclose(
        [v for _, v in logged], [np.mean(rate[:3]), np.mean(rate[3:6])], rtol=1e-5
    )


@pytest.mark.slow
def test_train_summary_steps_zero_writes_no_training_summaries(gray_folder, tmp_path):
    from tests.conftest import tiny_config
    from tfssl.train import launch
    from tfssl.train.summaries_io import read_scalars

    launch.train(
        tiny_config(
            mode="pretrain",
            dataset=f"folder:{gray_folder}",
            eval_steps=1,
            train_summary_steps=0,
            model_dir=str(tmp_path),
        )
    )
    written = read_scalars(str(tmp_path / "train"))
    assert written and not [tag for tag in written if tag.startswith("train/")]
