"""Every classification metric against scikit-learn, on random scores with ties."""

import os

import numpy as np
import pytest
from sklearn import metrics as sk

from tfssl.train import metrics


def tied_probabilities(num_classes, n=300, seed=0):
    """Labels and probabilities from integer logits in 0..2: many exact ties."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    logits = rng.integers(0, 3, (n, num_classes)).astype(float)
    logits[np.arange(n), labels] += rng.integers(0, 2, n)  # some signal
    e = np.exp(logits)
    return labels, e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_metrics_match_scikit_learn(num_classes):
    labels, probabilities = tied_probabilities(num_classes, seed=num_classes)
    predictions = np.argmax(probabilities, 1)
    report = metrics.classification_report(labels, probabilities)
    matrix = sk.confusion_matrix(labels, predictions, labels=range(num_classes))
    assert report["confusion_matrix"] == matrix.tolist()
    assert report["balanced_accuracy"] == pytest.approx(
        sk.balanced_accuracy_score(labels, predictions)
    )
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        labels, predictions, labels=range(num_classes), zero_division=0
    )
    np.testing.assert_allclose(report["per_class"]["precision"], precision)
    np.testing.assert_allclose(report["per_class"]["recall"], recall)
    np.testing.assert_allclose(report["per_class"]["f1"], f1)
    assert report["per_class"]["support"] == support.tolist()
    if num_classes == 2:
        expected_auc = sk.roc_auc_score(labels, probabilities[:, 1])
        assert report["sensitivity"] == pytest.approx(sk.recall_score(labels, predictions))
        assert report["specificity"] == pytest.approx(
            sk.recall_score(labels, predictions, pos_label=0)
        )
    else:
        expected_auc = sk.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert report["auroc"] == pytest.approx(expected_auc, abs=1e-12)


def test_binary_auroc_with_heavy_ties_and_a_missing_class():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 4, 200) / 3.0 + 0.2 * labels * rng.integers(0, 2, 200)
    assert metrics.binary_auroc(labels == 1, scores) == pytest.approx(
        sk.roc_auc_score(labels, scores), abs=1e-12
    )
    assert np.isnan(metrics.binary_auroc(np.ones(4, bool), scores[:4]))


def test_roc_curve_and_youden_threshold_match_scikit_learn():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 150)
    scores = np.round(rng.uniform(0, 1, 150) * 0.6 + 0.4 * labels, 1)  # ties
    fpr, tpr, thresholds = sk.roc_curve(labels, scores, drop_intermediate=False)
    ours_fpr, ours_tpr, ours_thresholds = metrics.roc_curve(labels == 1, scores)
    np.testing.assert_allclose(ours_fpr, fpr[1:])  # scikit-learn starts at (0, 0), threshold inf
    np.testing.assert_allclose(ours_tpr, tpr[1:])
    np.testing.assert_allclose(ours_thresholds, thresholds[1:])
    best = int(np.argmax(tpr - fpr))
    threshold, j = metrics.youden_threshold(labels == 1, scores)
    assert threshold == pytest.approx(thresholds[best])
    assert j == pytest.approx(tpr[best] - fpr[best])


def test_binary_metrics_at_a_threshold():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 100)
    predicted = rng.integers(0, 2, 100)
    at = metrics.binary_metrics(labels == 1, predicted == 1)
    assert at["sensitivity"] == pytest.approx(sk.recall_score(labels, predicted))
    assert at["specificity"] == pytest.approx(sk.recall_score(labels, predicted, pos_label=0))
    assert at["precision"] == pytest.approx(sk.precision_score(labels, predicted))
    assert at["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert at["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(labels, predicted))
    assert at["confusion_matrix"] == sk.confusion_matrix(labels, predicted).tolist()


def test_a_binary_run_reports_every_metric_and_the_val_threshold(tmp_path):
    """A tiny supervised run on an npz file: result.json against scikit-learn on its own
    predictions, and the threshold chosen on val (not test) by Youden's J."""
    import tensorflow as tf

    from tests.conftest import class_pattern_images, tiny_config
    from tfssl import restore
    from tfssl.data.pipeline import DataBundle
    from tfssl.methods import method_class
    from tfssl.train.evaluate import predict, softmax
    from tfssl.train.trainer import Trainer

    arrays = {}
    for split, n, seed in (("train", 12, 0), ("val", 10, 1), ("test", 14, 2)):
        images, labels = class_pattern_images(num_classes=2, per_class=n // 2, seed=seed)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[..., 0], labels[:, None]
    path = str(tmp_path / "tiny.npz")
    np.savez(path, **arrays)
    run_dir = str(tmp_path / "run")
    cfg = tiny_config(
        mode="supervised",
        dataset=f"npz:{path}",
        val_split="val",
        positive_class="0",
        model_dir=run_dir,
        train_batch_size=8,
    )
    result = Trainer(
        cfg, method_class(cfg), DataBundle(cfg, run_dir), tf.distribute.get_strategy()
    ).fit()["eval"]
    method, data, _, _ = restore.load_trained(run_dir)
    labels, logits = predict(method, data, "test", 32)
    probabilities = softmax(logits.astype(np.float64))
    assert result["auroc"] == pytest.approx(sk.roc_auc_score(labels == 0, probabilities[:, 0]))
    predictions = probabilities.argmax(1)
    assert result["sensitivity"] == pytest.approx(sk.recall_score(labels, predictions, pos_label=0))
    assert result["confusion_matrix"] == sk.confusion_matrix(labels, predictions).tolist()
    val_labels, val_logits = predict(method, data, "val", 32)
    val_scores = softmax(val_logits.astype(np.float64))[:, 0]
    fpr, tpr, thresholds = sk.roc_curve(val_labels == 0, val_scores, drop_intermediate=False)
    j = (tpr - fpr)[1:]  # scikit-learn's first point, threshold inf, calls nothing positive
    at = result["at_val_threshold"]
    assert at["threshold"] == pytest.approx(thresholds[1:][int(np.argmax(j))])
    chosen = probabilities[:, 0] >= at["threshold"]
    assert at["specificity"] == pytest.approx(sk.recall_score(labels == 0, chosen, pos_label=False))
    assert os.path.exists(os.path.join(run_dir, "roc_curve.png"))
