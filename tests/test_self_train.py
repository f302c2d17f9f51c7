"""Curriculum self-training: the rounds' percentages, the percentile selection and its ties, the
union of labeled and pseudo-labeled images, every round's steps, and a real run on gray_folder
(round 0 from the labels, then one round on them and every pseudo-label) that eval, export and a
rerun find."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_config
from tfssl import restore
from tfssl.data.pipeline import DataBundle
from tfssl.export import export_run
from tfssl.methods.self_train import SelfTrainRound, read_pseudo_labels, write_pseudo_labels
from tfssl.self_train import curriculum, select_most_confident, select_per_class, self_train
from tfssl.train.rundir import read_json


def test_curriculum_rises_by_the_step_to_100_percent():
    assert curriculum(20) == [20, 40, 60, 80, 100]
    assert curriculum(30) == [30, 60, 90, 100]
    assert curriculum(100) == [100]


def test_selection_takes_the_most_confident_percent_ties_to_lower_positions():
    confidence = np.array([0.9, 0.5, 0.9, 0.7, 0.9, 0.2])
    assert select_most_confident(confidence, 100 / 3).tolist() == [0, 2]  # 2 of the three 0.9s
    assert select_most_confident(confidence, 50).tolist() == [0, 2, 4]
    assert select_most_confident(confidence, 70).tolist() == [0, 2, 3, 4]  # round(4.2) = 4
    assert select_most_confident(confidence, 100).tolist() == [0, 1, 2, 3, 4, 5]
    assert select_most_confident(confidence, 5).tolist() == []  # round(0.3) = 0
    rng = np.random.default_rng(0)
    distinct = rng.permutation(1000) / 1000.0
    for percent in (20, 40, 60):
        threshold = np.percentile(distinct, 100 - percent, method="lower")  # numpy's percentile
        expected = np.flatnonzero(distinct > threshold)  # the top percent, strictly above it
        np.testing.assert_array_equal(select_most_confident(distinct, percent), expected)


def test_per_class_selection_takes_the_percent_of_each_predicted_class():
    rng = np.random.default_rng(1)
    predicted = rng.integers(0, 4, 400)
    confidence = rng.permutation(400) / 400.0
    confidence[predicted == 3] *= 0.1  # a class the teacher is unsure of
    for percent in (20, 50):
        expected = []
        for c in range(4):
            members = np.flatnonzero(predicted == c)
            count = int(round(percent / 100 * members.size))
            expected += members[np.argsort(-confidence[members])[:count]].tolist()
        chosen = select_per_class(confidence, predicted, percent)
        np.testing.assert_array_equal(chosen, np.sort(expected))
        assert np.sum(predicted[select_most_confident(confidence, percent)] == 3) == 0
        assert np.sum(predicted[chosen] == 3) == round(percent / 100 * np.sum(predicted == 3))
    assert select_per_class(np.zeros(0), np.zeros(0, int), 50).size == 0


def test_union_stream_holds_the_labeled_and_pseudo_labeled_images_with_their_labels(
    gray_folder, tmp_path
):
    cfg = tiny_config(
        mode="self_train_round",
        dataset=f"folder:{gray_folder}",
        model_dir=str(tmp_path),
        num_labels=8,
    )
    data = DataBundle(cfg, cfg.run_dir)
    truth = np.asarray(data.source.labels("train"))
    labeled = data.labeled_indices
    pool = np.setdiff1d(np.arange(truth.size), labeled)[:10]
    pseudo = (truth[pool] + 1) % 4  # wrong on purpose: the stream must carry these
    path = str(tmp_path / "pseudo.npz")
    write_pseudo_labels(path, np.append(pool, labeled[0]), np.append(pseudo, 3))
    indices, labels = read_pseudo_labels(path)
    assert indices.tolist()[:10] == pool.tolist() and labels.tolist()[:10] == pseudo.tolist()
    method = SelfTrainRound(cfg.replace(pseudo_labels=path), data)
    expected = np.full(truth.size, -1)
    expected[pool] = pseudo
    expected[labeled] = truth[labeled]  # a labeled image keeps its true label
    np.testing.assert_array_equal(method.targets, expected)
    assert method.examples_per_epoch == 18
    images = np.stack([x.numpy() for x, _ in data.eval_batches(lambda x: x, 64, "train").unbatch()])
    stream = data.train_batches(lambda image, seed: image, 6, targets=method.targets).unbatch()
    seen = []
    for image, label in stream.take(36):  # two epochs
        index = int(np.argmin(np.abs(images - image.numpy()).reshape(len(images), -1).sum(-1)))
        assert label.numpy() == expected[index]
        seen.append(index)
    assert sorted(set(seen)) == sorted(np.flatnonzero(expected >= 0).tolist())


@pytest.fixture(scope="module")
def run(gray_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("self_train")
    cfg = tiny_config(
        mode="self_train",
        dataset=f"folder:{gray_folder}",
        model_dir=str(root),
        num_labels=16,
        curriculum_step=100,
        train_steps=2,
        steps_per_loop=1,
        eval_steps=1,
        reinit=False,
    )
    return cfg, self_train(cfg)


def test_round_labels_the_pool_with_the_previous_model(run):
    cfg, result = run
    root = cfg.run_dir
    assert [r["round"] for r in result["rounds"]] == [0, 1]
    data = DataBundle(cfg, root)
    truth = np.asarray(data.source.labels("train"))
    path = os.path.join(root, "round_1", "pseudo_labels.npz")
    indices, labels = read_pseudo_labels(path)
    pool = np.setdiff1d(
        np.arange(64), read_json(os.path.join(root, "label_subset.json"))["indices"]
    )
    np.testing.assert_array_equal(indices, pool)  # 100% of the 48 unlabeled images
    teacher = restore.load_trained(os.path.join(root, "round_0"))[0]
    images = np.stack([x.numpy() for x, _ in data.eval_batches(lambda x: x, 64, "train").unbatch()])
    logits = teacher.eval_logits(tf.constant(images[pool])).numpy()
    np.testing.assert_array_equal(labels, logits.argmax(-1))
    with np.load(path) as saved:
        np.testing.assert_allclose(saved["confidence"], softmax(logits).max(-1), rtol=1e-4)
    summary = result["rounds"][1]
    assert summary["pseudo_label_accuracy"] == pytest.approx(np.mean(labels == truth[indices]))
    assert summary["num_pseudo_labels"] == 48
    assert read_json(os.path.join(root, "round_1", "flags.json"))["job"] == "self_train_round"
    assert result["teacher_top_1_accuracy"] == result["rounds"][0]["top_1_accuracy"]
    assert result["final_run"] == "round_1"
    assert os.path.exists(os.path.join(root, "self_train_rounds.png"))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_eval_and_export_of_model_dir_use_the_final_round(run):
    cfg, result = run
    export_dir = export_run(cfg.replace(mode="export"))
    assert export_dir == os.path.join(cfg.run_dir, "round_1", "saved_model")
    final = restore.load_trained(os.path.join(cfg.run_dir, "round_1"))[0]
    images = tf.random.uniform([2, 16, 16, 1])
    loaded = tf.saved_model.load(export_dir)
    np.testing.assert_allclose(
        loaded.call_inference(images)["logits"], final.eval_logits(images), atol=1e-4
    )
    evaluated = restore.evaluate_checkpoints(cfg.replace(mode="eval", eval_steps=0))
    assert evaluated["checkpoint"].startswith(os.path.join(cfg.run_dir, "round_1"))
    direct = cfg.replace(mode="eval", model_dir=os.path.join(cfg.run_dir, "round_1"), eval_steps=0)
    assert evaluated["eval"] == restore.evaluate_checkpoints(direct)["eval"]


def test_reinit_false_starts_a_round_from_the_previous_one(run):
    cfg, _ = run
    previous = os.path.join(cfg.run_dir, "round_0")
    round_cfg = cfg.replace(
        mode="self_train_round", model_dir=str(cfg.run_dir) + "_probe", checkpoint=previous
    )
    method = SelfTrainRound(round_cfg, DataBundle(round_cfg, round_cfg.run_dir))
    method.build()
    method.initialize()
    saved = restore.load_trained(previous)[0]
    for a, b in zip(method.model.variables, saved.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_rerun_reuses_the_finished_rounds(run, caplog):
    cfg, result = run
    with caplog.at_level(logging.INFO, logger="tfssl"):
        again = self_train(cfg)
    assert sum("reusing" in r.message for r in caplog.records) == 2
    assert again["rounds"] == result["rounds"]


def test_noisy_student_view_adds_strong_augmentation(gray_folder, tmp_path):
    cfg = tiny_config(
        mode="self_train_round",
        dataset=f"folder:{gray_folder}",
        model_dir=str(tmp_path),
        crop_min_area=1.0,
    )
    image = tf.constant(np.random.default_rng(0).uniform(size=(16, 16, 1)), tf.float32)
    seed = tf.constant([3, 4], tf.int64)
    data = DataBundle(cfg, cfg.run_dir)
    noisy = SelfTrainRound(cfg, data).view(image, seed).numpy()
    plain = SelfTrainRound(cfg.replace(noisy_student=False), data).view(image, seed).numpy()
    assert np.sum(np.all(noisy == 0.5, -1)) >= 16 and not np.any(np.all(plain == 0.5, -1))


def test_compare_runs_fixmatch_and_self_train_from_the_simclr_fine_tune(
    gray_folder, tmp_path, monkeypatch
):
    """--methods=fixmatch,self_train: SimCLR pretrains once, fine-tunes at each fraction, and
    self-training starts from that fine-tune; the configs each run gets (no training here)."""
    import tfssl.self_train
    import tfssl.train.launch
    from tfssl.compare import Comparison
    from tfssl.compare_methods import BUDGETS, budget_steps

    calls = []

    def fake(run_cfg):
        calls.append(run_cfg)
        best = {"step": 1, "balanced_accuracy": 0.5, "loss": 1.0}  # a --best_checkpoint_metric run
        return {"eval": {"top_1_accuracy": 0.5}, "train_wall_time_s": 1.0, "epochs": 1.0,
                "global_step": run_cfg.train_steps, "num_labeled_examples": 16,
                "selection": {"best": best, "best_step": 1, "history": [best]}}  # fmt: skip

    monkeypatch.setattr(tfssl.train.launch, "train", fake)
    monkeypatch.setattr(tfssl.self_train, "self_train", fake)
    cfg = tiny_config(
        mode="compare",
        dataset=f"folder:{gray_folder}",
        model_dir=str(tmp_path),
        budget="small",
        methods="fixmatch,self_train",
        label_fractions="0.25",
    )
    rows = Comparison(cfg).run()
    jobs = [c.job for c in calls]
    grid = len(cfg.float_list("finetune_learning_rates")) * len(
        cfg.float_list("finetune_crop_min_areas")
    )
    assert jobs == ["pretrain", "fixmatch", "finetune"] + ["finetune"] * grid + ["self_train"]
    pretrain, fixmatch, probe, *finetunes, self_training = calls
    # The recipe's learning rate (0.001, for splits too small to choose) is not in the grid, so
    # the grid's first cell (lr 0.02, crop 0.3) trains first; the fakes tie on validation, so it
    # wins.
    assert finetunes[0].learning_rate == 0.02 and finetunes[0].crop_min_area == 0.3
    finetune = next(f for f in finetunes if f.model_dir.endswith("lr0.02_crop0.3"))
    num_images, labeled = 64, 16  # gray_folder: 4 classes x 16 train images; 25% labeled
    assert fixmatch.train_steps == budget_steps(
        BUDGETS["fixmatch"]["small"], num_images, fixmatch.train_batch_size
    )
    assert fixmatch.optimizer == "momentum" and fixmatch.unlabeled_ratio == 7
    assert probe.checkpoint == pretrain.model_dir  # SimCLR fine-tunes start from the probe
    assert all(f.checkpoint == probe.model_dir for f in finetunes)
    assert self_training.teacher == finetune.model_dir
    assert self_training.train_steps == budget_steps(
        BUDGETS["self_train"]["small"], labeled, self_training.train_batch_size
    )
    assert [r["method"] for r in rows] == ["fixmatch", "simclr_linear", "simclr", "self_train"]


def test_every_round_trains_the_epochs_of_the_whole_train_split(gray_folder, tmp_path):
    cfg = tiny_config(
        mode="self_train",
        dataset=f"folder:{gray_folder}",
        model_dir=str(tmp_path),
        num_labels=16,
        curriculum_step=50,
        train_steps=0,
        train_epochs=1,
        steps_per_loop=1,
        eval_steps=1,
    )
    result = self_train(cfg)
    # 64 train images, batch 16, one epoch: 64 // 16 + 1 steps for round 0 (16 labels), round 1
    # (16 + 24 pseudo-labels) and round 2 (all 64) alike; on their own sets: 2, 3 and 5.
    assert [r["global_step"] for r in result["rounds"]] == [5, 5, 5]
    assert result["rounds"][2]["num_pseudo_labels"] == 48
