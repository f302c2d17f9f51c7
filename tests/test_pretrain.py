"""SimCLR pretraining end to end: it learns, it resumes, it evaluates."""

import logging

import numpy as np
import pytest

from tests.conftest import tiny_config
from tfssl.train import launch, runtime
from tfssl.train import trainer as trainer_module
from tfssl.train.rundir import read_json
from tfssl.train.summaries_io import read_scalars


@pytest.mark.slow  # over 30 s on 2 cores
def test_pretrain_on_mnist_learns(mnist_data_dir, tmp_path):
    cfg = tiny_config(
        mode="pretrain",
        dataset="mnist",
        data_dir=mnist_data_dir,
        model_dir=str(tmp_path),
        train_steps=300,
        train_batch_size=64,
        steps_per_loop=25,
        checkpoint_steps=100,
        width_multiplier=0.125,
        learning_rate=1.0,
        temperature=0.5,
        eval_batch_size=500,
        eval_steps=4,
    )
    result = launch.train(cfg)
    curves = read_scalars(str(tmp_path / "train"))
    loss = [v for _, v in curves["train/contrast_loss"]]
    accuracy = [v for _, v in curves["train/contrast_acc"]]
    assert len(loss) == 12
    assert np.mean(loss[-3:]) < np.mean(loss[:2]) - 0.5
    assert np.mean(accuracy[-3:]) > np.mean(accuracy[:2]) + 0.1
    assert result["eval"]["num_examples"] == 2000
    # Chance is 0.1. This 300-step run of a tiny network reaches 0.43-0.45 on a Sapphire Rapids CPU
    # (oneDNN) and about 0.55 on AMD EPYC; seeds vary it by a few points.
    assert result["eval"]["top_1_accuracy"] > 0.3
    assert read_json(str(tmp_path / "result.json"))["global_step"] == 300
    assert (tmp_path / "train").is_dir() and (tmp_path / "flags.json").exists()


class Crash(Exception):
    pass


def final_weights(cfg):
    from tfssl.data.pipeline import DataBundle
    from tfssl.methods.simclr import SimCLRPretrain
    from tfssl.train.distribute import make_strategy

    runtime.setup_runtime(cfg)
    trainer = trainer_module.Trainer(
        cfg, SimCLRPretrain, DataBundle(cfg, cfg.run_dir), make_strategy("one_device")
    )
    trainer.fit()
    return [v.numpy() for v in trainer.checkpoint.model.variables]


def test_restart_resumes_from_the_last_checkpoint(gray_folder, tmp_path, monkeypatch, caplog):
    cfg = tiny_config(
        mode="pretrain",
        dataset=f"folder:{gray_folder}",
        train_steps=6,
        checkpoint_steps=2,
        steps_per_loop=2,
        eval_steps=1,
    )
    uninterrupted = final_weights(cfg.replace(model_dir=str(tmp_path / "whole")))

    interrupted = cfg.replace(model_dir=str(tmp_path / "cut"))
    save = trainer_module.Trainer._save

    def save_then_crash_at_step_4(self, manager):
        save(self, manager)
        if int(self.step.numpy()) == 4:
            raise Crash()

    monkeypatch.setattr(trainer_module.Trainer, "_save", save_then_crash_at_step_4)
    with pytest.raises(Crash):
        final_weights(interrupted)
    monkeypatch.setattr(trainer_module.Trainer, "_save", save)
    with caplog.at_level(logging.INFO, logger="tfssl"):
        logging.getLogger("tfssl").propagate = True
        resumed = final_weights(interrupted)
    assert "resumed from" in caplog.text and "at step 4" in caplog.text
    assert read_json(str(tmp_path / "cut" / "result.json"))["global_step"] == 6
    for a, b in zip(uninterrupted, resumed):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_a_longer_budget_continues_a_finished_run_on_the_longer_schedule(gray_folder, tmp_path):
    """Rerunning a finished run with more --train_steps trains on from its last step, with the
    cosine decay recomputed for the new length (how BENCHMARKS.md's 60-epoch encoder was made)."""
    cfg = tiny_config(
        mode="pretrain",
        dataset=f"folder:{gray_folder}",
        model_dir=str(tmp_path),
        steps_per_loop=1,
        checkpoint_steps=1,
        eval_steps=1,
        warmup_epochs=0,
        learning_rate=0.5,
        learning_rate_scaling="linear",
    )
    launch.train(cfg.replace(train_steps=4))
    launch.train(cfg.replace(train_steps=8))
    assert read_json(str(tmp_path / "result.json"))["global_step"] == 8
    logged = dict(read_scalars(str(tmp_path / "train"))["train/learning_rate"])
    peak = 0.5 * cfg.train_batch_size / 256

    def cosine(step_index, total):  # the rate of the step that starts at step_index (0-based)
        return peak * 0.5 * (1 + np.cos(np.pi * step_index / total))

    np.testing.assert_allclose(
        [logged[k] for k in (1, 2, 3, 4)], [cosine(k - 1, 4) for k in (1, 2, 3, 4)], rtol=1e-5
    )
    np.testing.assert_allclose(
        [logged[k] for k in (5, 6, 7, 8)], [cosine(k - 1, 8) for k in (5, 6, 7, 8)], rtol=1e-5
    )
