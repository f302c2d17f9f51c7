"""The command line: bad input gets one line naming the problem and the fix, never a traceback."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, REPO)
import run  # noqa: E402


def cli(capsys, *args):
    code = run.main(["run.py", *args])
    return code, capsys.readouterr().err.strip()


BAD_FLAGS = [
    (["--mode=nonsense"], "--mode=nonsense is not one of"),
    (["--train_batch_size=abc"], "train_batch_size"),
    (["--train_batch_size=0"], "--train_batch_size=0 must be positive"),
    (["--train_batch_size=-4"], "must be positive"),
    (["--train_steps=-1"], "must not be negative"),
    (["--train_steps=0", "--train_epochs=0"], "set one of them"),
    (["--learning_rate=0"], "--learning_rate=0.0 must be positive"),
    (["--temperature=0"], "must be positive"),
    (["--label_fraction=0"], "--label_fraction=0.0 must be in (0, 1]"),
    (["--label_fraction=1.5"], "must be in (0, 1]"),
    (["--num_labels=-10"], "must not be negative"),
    (["--optimizer=sgd"], "--optimizer=sgd is not one of lars, momentum, adam"),
    (["--resnet_depth=19"], "--resnet_depth=19 is not one of"),
    (["--width_multiplier=0"], "must be positive"),
    (["--image_size=4"], "--image_size=4 is too small"),
    (["--fine_tune_after_block=7"], "must be -1..4"),
    (["--ft_proj_selector=9"], "must be 0..num_proj_layers"),
    (["--batch_norm_decay=1.5"], "must be in [0, 1)"),
    (["--mode=finetune"], "needs --checkpoint"),
    (["--mode=distill"], "needs --teacher"),
    (["--label_fractions=0.1,x"], "comma-separated numbers"),
    (["--label_fractions=0.1,2"], "each in (0, 1]"),
    (["--mode=compare", "--finetune_learning_rates=0.1,-0.02"], "each positive"),
    (["--mode=compare", "--finetune_crop_min_areas=0.3,1.5"], "each in (0, 1]"),
    (["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
    (["stray_argument"], "unexpected argument(s) stray_argument"),
    (["--precision=fp8"], "--precision=fp8 is not one of"),
    (
        ["--mode=supervised", "--architecture=convlarge"],
        "--mode=supervised builds resnet or vit, not --architecture=convlarge",
    ),
    (
        ["--mode=ladder", "--architecture=resnet"],
        "--mode=ladder builds mlp, not --architecture=resnet",
    ),
    (["--strategy=gpu_cluster"], "--strategy=gpu_cluster is not one of"),
    (["--mode=mean_teacher", "--elastic_sigma=0"], "--elastic_sigma=0.0 must be positive"),
    (["--bn_recalibration_batches=-1"], "--bn_recalibration_batches=-1 must not be negative"),
    (["--mode=ladder", "--bn_recalibration_batches=2"], "--mode=ladder has no batch-norm layers"),
]


@pytest.mark.parametrize("args,message", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_get_one_line(capsys, args, message):
    code, err = cli(capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.splitlines()) == 1


def test_bad_data_gets_one_line(capsys, tmp_path):
    code, err = cli(capsys, "--dataset=no_such_dataset_xyz", f"--model_dir={tmp_path / 'a'}")
    assert (
        code == 2 and "unknown dataset 'no_such_dataset_xyz'" in err and len(err.splitlines()) == 1
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = cli(capsys, f"--dataset=folder:{empty}", f"--model_dir={tmp_path / 'b'}")
    assert code == 2 and "has no class sub-folders" in err


def test_batch_not_divisible_by_replicas(capsys, gray_folder, tmp_path):
    code, err = cli(
        capsys,
        f"--dataset=folder:{gray_folder}",
        "--strategy=mirrored",
        "--train_batch_size=7",
        f"--model_dir={tmp_path}",
    )
    assert code == 2 and "--train_batch_size=7 is not divisible by the 2 replicas" in err


def test_unwritable_model_dir(capsys, gray_folder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, err = cli(capsys, f"--dataset=folder:{gray_folder}", f"--model_dir={blocker / 'run'}")
    assert code == 2 and "is not writable" in err


def test_missing_checkpoint(capsys, tmp_path):
    code, err = cli(
        capsys,
        "--mode=finetune",
        f"--checkpoint={tmp_path / 'nowhere'}",
        "--dataset=mnist",
        f"--model_dir={tmp_path / 'ft'}",
    )
    assert code == 2 and "nowhere" in err and "does not exist" in err


def test_real_process_prints_no_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, os.path.join(REPO, "run.py"), "--mode=pretrain", "--dataset=folder:/nope"],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        timeout=120,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert (
        out.stderr.strip().splitlines()[-1].startswith("error: folder dataset /nope does not exist")
    )


def test_help_lists_official_flags(capsys):
    assert run.main(["run.py", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in (
        "--train_batch_size",
        "--learning_rate_scaling",
        "--proj_head_mode",
        "--fine_tune_after_block",
        "--color_jitter_strength",
        "--[no]lineareval_while_pretraining",
        "--sk_ratio",
        "--[no]global_bn",
    ):
        assert flag in text


def test_official_mode_spellings():
    from tfssl.config import Config

    cfg = Config.for_job(
        {
            "mode": "train_then_eval",
            "train_mode": "finetune",
            "checkpoint": "runs/pre",
            "fine_tune_after_block": 4,
            "zero_init_logits_layer": True,
        }
    )
    # the official spelling means the official defaults (tests/test_official_flags.py)
    assert cfg.job == "finetune" and cfg.optimizer == "lars" and cfg.ft_proj_selector == 0
    assert Config.for_job({"mode": "train"}).job == "pretrain"
    assert Config.for_job({"mode": "train", "train_mode": "pretrain"}).optimizer == "lars"
