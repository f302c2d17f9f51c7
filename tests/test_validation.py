"""Choices on validation, never on test: the validation split held out of the labeled subset, and
best-checkpoint selection on it."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import class_pattern_images, tiny_config, write_image_folder
from tfssl.data import subsets
from tfssl.errors import ConfigError
from tfssl.train import selection


# --- the split ---
def test_hold_out_takes_each_class_share_by_hand():
    # 10, 5 and 2 labeled images of classes 0, 1, 2 (positions in a train split of 40).
    labels = np.repeat([0, 1, 2, 3], 10)
    indices = np.concatenate([np.arange(10), np.arange(10, 15), np.arange(20, 22)])
    fit, val = subsets.hold_out(indices, labels, 0.2, seed=5)
    # floor(0.2 n + 1/2), at least 1, at most n - 1: floor(2.5) = 2, floor(1.5) = 1, 0 -> 1
    assert np.bincount(labels[val], minlength=4).tolist() == [2, 1, 1, 0]
    assert np.bincount(labels[fit], minlength=4).tolist() == [8, 4, 1, 0]
    assert not set(fit) & set(val) and sorted(set(fit) | set(val)) == sorted(indices)
    assert list(val) == sorted(val) and list(fit) == sorted(fit)
    again = subsets.hold_out(indices, labels, 0.2, seed=5)
    np.testing.assert_array_equal(val, again[1])
    others = {tuple(subsets.hold_out(indices, labels, 0.2, seed=s)[1]) for s in range(6)}
    assert len(others) > 1  # the label seed picks the images
    with pytest.raises(ConfigError, match="class 3 has 1 labeled image"):
        subsets.hold_out(np.array([0, 1, 30]), labels, 0.2, seed=0)


def test_validation_split_is_disjoint_from_fitting_and_from_test(tmp_path):
    """Train and test are slices of one split here, so disjointness from test is a real check."""
    from tfssl.data.pipeline import DataBundle

    images, labels = class_pattern_images(num_classes=3, per_class=20, size=16, seed=4)
    root = write_image_folder(str(tmp_path / "imgs"), images, labels)
    cfg = tiny_config(
        mode="supervised",
        dataset=f"folder:{root}",
        train_split="train[:75%]",
        eval_split="train[75%:]",
        label_fraction=0.5,
        labeled_val_fraction=0.25,
        val_split="labeled_val",
        label_seed=3,
        model_dir=str(tmp_path / "run"),
    )
    data = DataBundle(cfg, cfg.model_dir)
    fit, val = data.labeled_indices, data.val_indices
    # 45 train images (15 a class), 0.5 -> 8 labels a class (round(7.5)), 0.25 of 8 -> 2 a class.
    train_labels = data.train_labels
    assert np.bincount(train_labels[val]).tolist() == [2, 2, 2]
    assert np.bincount(train_labels[fit]).tolist() == [6, 6, 6]
    whole_train = data.source.indices("train[:75%]")
    whole_test = data.source.indices("train[75%:]")
    fit_images, val_images = set(whole_train[fit]), set(whole_train[val])
    assert not fit_images & val_images
    assert not val_images & set(whole_test) and not fit_images & set(whole_test)
    assert set(data.part_indices("labeled")) == set(fit)
    assert set(val) <= set(data.part_indices("unlabeled"))  # their labels unused, images free
    saved = json.load(open(os.path.join(cfg.model_dir, "label_subset.json")))
    assert saved["val_indices"] == val.tolist() and saved["labeled_val_fraction"] == 0.25
    assert sorted(saved["indices"]) == sorted(np.concatenate([fit, val]).tolist())

    # What the run reads: every image of the labeled stream is a fitting image, none a val image;
    # the val split's images are exactly the held-out ones.
    decoded = data.decoded_array("train[:75%]")
    by_bytes = {decoded[i].tobytes(): i for i in range(len(decoded))}
    stream = data.train_batches(lambda image, seed: image, 9, "labeled")
    seen = set()
    for batch_images, batch_labels in stream.take(6):
        for image, label in zip(batch_images.numpy(), batch_labels.numpy()):
            index = by_bytes[np.round(image * 255).astype(np.uint8).tobytes()]
            seen.add(index)
            assert train_labels[index] == label
    assert seen == set(fit)
    shown = [
        by_bytes[np.round(image * 255).astype(np.uint8).tobytes()]
        for batch, _ in data.eval_batches(lambda image: image, 4, "labeled_val")
        for image in batch.numpy()
    ]
    assert shown == val.tolist()


def test_flags_go_together():
    with pytest.raises(ConfigError, match="go together"):
        tiny_config(mode="supervised", labeled_val_fraction=0.2)
    with pytest.raises(ConfigError, match="needs --val_split"):
        tiny_config(mode="supervised", best_checkpoint_metric="loss")


# --- best-checkpoint selection ---
def test_sort_key_ranks_the_metric_then_the_lower_loss():
    history = [
        {"step": 0, "balanced_accuracy": 0.5, "loss": 0.9},
        {"step": 2, "balanced_accuracy": 0.8, "loss": 0.7},
        {"step": 4, "balanced_accuracy": 0.8, "loss": 0.6},
        {"step": 6, "balanced_accuracy": 0.7, "loss": 0.2},
    ]
    assert selection.best_of(history, "balanced_accuracy")["step"] == 4
    assert selection.best_of(history, "loss")["step"] == 6
    history.append({"step": 8, "balanced_accuracy": float("nan"), "loss": 0.1})
    assert selection.best_of(history, "balanced_accuracy")["step"] == 4


# Scripted validation scores by step: the best balanced accuracy is at steps 2 and 3, and 3 has the
# lower loss, so step 3 is the one to keep.
SCRIPT = {
    0: (0.25, 1.40),
    1: (0.50, 1.00),
    2: (0.90, 0.50),
    3: (0.90, 0.40),
    4: (0.70, 0.30),
    5: (0.30, 0.90),
    6: (0.60, 0.80),
}


def script_validation(monkeypatch):
    """Replaces the validation scores with SCRIPT's, by step (the other scores stay real)."""
    from tfssl.train import evaluate
    from tfssl.train import selection as selection_module

    def scripted(method, cfg):
        real = evaluate.scores(*evaluate.predict(method, method.data, cfg.val_split, 32))
        step = int(method.step.numpy())
        return {**real, "balanced_accuracy": SCRIPT[step][0], "loss": SCRIPT[step][1]}

    monkeypatch.setattr(selection_module, "validation_scores", scripted)


def scripted_run_config(gray_folder, tmp_path, **values):
    """A 6-step supervised run that validates at every step on 8 held-out labeled images."""
    return tiny_config(
        mode="supervised",
        dataset=f"folder:{gray_folder}",
        train_steps=6,
        checkpoint_steps=1,
        label_fraction=0.5,
        labeled_val_fraction=0.25,
        val_split="labeled_val",
        best_checkpoint_metric="balanced_accuracy",
        model_dir=str(tmp_path / "run"),
        **values,
    )


def test_best_checkpoint_is_restored_and_the_only_one_tested(gray_folder, tmp_path, monkeypatch):
    from tfssl import restore
    from tfssl.train import evaluate, trainer
    from tfssl.train.launch import train

    script_validation(monkeypatch)
    tested = []
    real_evaluate_all = trainer.evaluate_all
    monkeypatch.setattr(
        trainer, "evaluate_all", lambda m, c: tested.append(1) or real_evaluate_all(m, c)
    )
    cfg = scripted_run_config(gray_folder, tmp_path, keep_checkpoint_max=10)
    result = train(cfg)
    assert len(tested) == 1  # test scored once, at the end
    chosen = result["selection"]
    assert chosen["best_step"] == 3 and [e["step"] for e in chosen["history"]] == list(range(7))
    assert result["global_step"] == 6
    # The run's last checkpoint holds step 3's weights, which the manager also kept as ckpt-3.
    latest = tf.train.latest_checkpoint(cfg.model_dir)
    final, third = (
        tf.train.load_checkpoint(latest),
        tf.train.load_checkpoint(os.path.join(cfg.model_dir, "ckpt-3")),
    )
    names = [n for n, _ in tf.train.list_variables(latest) if n.startswith("model/")]
    assert names
    for name in names:
        np.testing.assert_array_equal(final.get_tensor(name), third.get_tensor(name))
    fifth = tf.train.load_checkpoint(os.path.join(cfg.model_dir, "ckpt-5"))
    assert any(not np.array_equal(fifth.get_tensor(n), third.get_tensor(n)) for n in names)
    # The test numbers are step 3's, scored independently.
    method, data, _, run_cfg = restore.load_trained(os.path.join(cfg.model_dir, "ckpt-3"))
    again = evaluate.evaluate(method, data, run_cfg.eval_split, 32)
    assert result["eval"]["top_1_accuracy"] == pytest.approx(again["top_1_accuracy"], abs=1e-12)
    assert result["eval"]["loss"] == pytest.approx(again["loss"], rel=1e-5)


@pytest.mark.parametrize("min_val_examples,kept_step", [(8, 3), (9, 6)])
def test_a_split_under_min_val_examples_keeps_the_last_checkpoint(
    gray_folder, tmp_path, monkeypatch, min_val_examples, kept_step
):
    """8 validation images: --min_val_examples=8 chooses step 3 by the script, 9 keeps step 6."""
    from tfssl import restore
    from tfssl.train import evaluate
    from tfssl.train.launch import train

    script_validation(monkeypatch)
    cfg = scripted_run_config(gray_folder, tmp_path, min_val_examples=min_val_examples)
    result = train(cfg)
    assert result["num_val_examples"] == 8
    assert result["selection"]["best_step"] == kept_step
    assert result["selection"]["kept_last"] == (kept_step == 6)
    assert max(SCRIPT[s][0] for s in SCRIPT) > SCRIPT[6][0]  # the last is not the best scored
    method, data, _, run_cfg = restore.load_trained(cfg.model_dir)  # the run's last checkpoint
    again = evaluate.evaluate(method, data, run_cfg.eval_split, 32)
    assert result["eval"]["top_1_accuracy"] == pytest.approx(again["top_1_accuracy"], abs=1e-12)


@pytest.mark.parametrize("first,changed", [(8, 9), pytest.param(9, 8, marks=pytest.mark.slow)])
def test_a_resume_under_another_min_val_examples_stops_in_one_line(
    gray_folder, tmp_path, monkeypatch, first, changed
):
    """Interrupted after step 4's validation: at 8 the best so far is step 3, at 9 step 4, and
    best/ holds that step only. Resuming under the other value, which would move the best, is a
    one-line error that leaves the folder's record of the value as it was; under the same value
    the run finishes with the uninterrupted choice."""
    from tfssl.train import evaluate
    from tfssl.train import selection as selection_module
    from tfssl.train.launch import train

    def interrupted(method, cfg):
        step = int(method.step.numpy())
        if step == 5:
            raise KeyboardInterrupt
        real = evaluate.scores(*evaluate.predict(method, method.data, cfg.val_split, 32))
        return {**real, "balanced_accuracy": SCRIPT[step][0], "loss": SCRIPT[step][1]}

    monkeypatch.setattr(selection_module, "validation_scores", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(scripted_run_config(gray_folder, tmp_path, min_val_examples=first))
    with open(tmp_path / "run" / selection.SELECTION_FILE) as f:
        assert json.load(f)["best_step"] == (3 if first == 8 else 4)
    script_validation(monkeypatch)
    with pytest.raises(ConfigError, match=f"resume it with --min_val_examples={first},"):
        train(scripted_run_config(gray_folder, tmp_path, min_val_examples=changed))
    with open(tmp_path / "run" / "flags.json") as f:
        assert json.load(f)["min_val_examples"] == first
    result = train(scripted_run_config(gray_folder, tmp_path, min_val_examples=first))
    assert result["global_step"] == 6
    assert result["selection"]["best_step"] == (3 if first == 8 else 6)


def test_a_resumed_worker_restores_a_best_chosen_before_from_the_chiefs_copy(tmp_path):
    """Another worker of a multi-worker run saves to a scratch folder of its own process; resumed,
    its best may be a step saved before the interruption, which only the chief's best/ holds."""
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    weight = tf.Variable(1.0)
    chief = selection.BestCheckpoint(run_dir, "balanced_accuracy", "labeled_val", {"w": weight})
    chief.add(2, {"balanced_accuracy": 0.9, "loss": 0.1, "num_examples": 10})
    resumed = tf.Variable(5.0)
    worker = selection.BestCheckpoint(
        run_dir,
        "balanced_accuracy",
        "labeled_val",
        {"w": resumed},
        writer=False,
        directory=str(tmp_path / "scratch"),
    )
    worker.add(4, {"balanced_accuracy": 0.5, "loss": 0.3, "num_examples": 10})
    assert worker.restore_best()["step"] == 2
    assert float(resumed.numpy()) == 1.0


def test_best_of_keeps_the_latest_evaluation_of_a_small_split():
    best_of = selection.best_of
    history = [
        {"step": 0, "balanced_accuracy": 0.5, "loss": 1.0, "num_examples": 14},
        {"step": 5, "balanced_accuracy": 0.9, "loss": 0.4, "num_examples": 14},
        {"step": 9, "balanced_accuracy": 0.7, "loss": 0.6, "num_examples": 14},
    ]
    assert best_of(history, "balanced_accuracy")["step"] == 5
    assert best_of(history, "balanced_accuracy", min_examples=14)["step"] == 5
    assert best_of(history, "balanced_accuracy", min_examples=15)["step"] == 9
    assert best_of(list(reversed(history)), "loss", min_examples=100)["step"] == 9
