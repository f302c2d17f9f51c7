"""Losses against numpy computations written from the formulas."""

import numpy as np
import pytest
import tensorflow as tf

from tfssl.losses.contrastive import contrast_metrics, nt_xent
from tfssl.losses.supervised import (
    accuracy,
    cross_entropy,
    distillation_loss,
    known_label_cross_entropy,
)


def numpy_nt_xent(z1, z2, temperature, hidden_norm):
    """Per-anchor loop over the 2N - 2 negatives, straight from the SimCLR paper."""
    if hidden_norm:
        z1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
        z2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(n):
        for anchor, same_view, other_view in ((z1[i], z1, z2), (z2[i], z2, z1)):
            positive = np.exp(anchor @ other_view[i] / temperature)
            candidates = [np.exp(anchor @ other_view[j] / temperature) for j in range(n)]
            candidates += [np.exp(anchor @ same_view[j] / temperature) for j in range(n) if j != i]
            total += -np.log(positive / np.sum(candidates))
    return total / n


@pytest.mark.parametrize("hidden_norm", [True, False])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_numpy(hidden_norm, temperature):
    rng = np.random.default_rng(0)
    z1 = rng.normal(size=(2, 5)).astype(np.float64)
    z2 = rng.normal(size=(2, 5)).astype(np.float64)
    if not hidden_norm:
        z1, z2 = 0.3 * z1, 0.3 * z2  # keep exp() of unnormalised products moderate
    loss, logits, labels = nt_xent(
        tf.constant(z1, tf.float32), tf.constant(z2, tf.float32), temperature, hidden_norm
    )
    assert float(loss) == pytest.approx(numpy_nt_xent(z1, z2, temperature, hidden_norm), rel=1e-5)
    assert logits.shape == (2, 4) and labels.shape == (2, 4)


def test_nt_xent_larger_batch_and_metrics():
    rng = np.random.default_rng(1)
    z1 = rng.normal(size=(6, 8))
    z2 = z1 + 0.05 * rng.normal(size=(6, 8))  # positives nearly identical: contrast accuracy 1
    loss, logits, labels = nt_xent(
        tf.constant(z1, tf.float32), tf.constant(z2, tf.float32), 0.2, True
    )
    assert float(loss) == pytest.approx(numpy_nt_xent(z1, z2, 0.2, True), rel=1e-5)
    metrics = contrast_metrics(logits, labels)
    assert float(metrics["contrast_acc"]) == 1.0
    # entropy of softmax over the 2N candidates of each first-view anchor, self masked
    zn1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    zn2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    entropies = []
    for i in range(6):
        scores = (
            np.concatenate([zn1[i] @ zn2.T, [zn1[i] @ zn1[j] for j in range(6) if j != i]]) / 0.2
        )
        p = np.exp(scores - scores.max())
        p /= p.sum()
        entropies.append(-(p * np.log(p)).sum())
    assert float(metrics["contrast_entropy"]) == pytest.approx(np.mean(entropies), rel=1e-4)


def test_cross_entropy_and_accuracy():
    logits = np.array([[2.0, 1.0, 0.1], [0.2, 0.1, 3.0], [1.0, 2.0, 0.5]])
    labels = np.array([0, 1, 1])
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -np.mean(log_softmax[np.arange(3), labels])
    assert float(cross_entropy(labels, tf.constant(logits, tf.float32))) == pytest.approx(
        expected, rel=1e-6
    )
    assert float(accuracy(labels, logits)) == pytest.approx(2 / 3)
    assert float(accuracy(labels, logits, k=2)) == pytest.approx(2 / 3)  # label 1 is third in row 2
    assert float(accuracy(labels, logits, k=3)) == pytest.approx(1.0)


@pytest.mark.parametrize("class_weights", [None, [0.5, 2.0, 1.0]])
def test_known_label_cross_entropy_counts_unknown_labels_as_zero_terms(class_weights):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 3))
    labels = np.array([2, -1, 0, -1, 1])
    weights = np.ones(3) if class_weights is None else np.array(class_weights)
    total = 0.0
    for row, label in zip(logits, labels):
        if label >= 0:
            total += -weights[label] * (row[label] - np.log(np.exp(row).sum()))
    loss = known_label_cross_entropy(labels, tf.constant(logits, tf.float32), class_weights)
    assert float(loss) == pytest.approx(total / 5, rel=1e-5)  # over all 5, not the 3 labeled
    none_known = known_label_cross_entropy([-1, -1], tf.constant(logits[:2], tf.float32))
    assert float(none_known) == 0.0


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_distillation_loss_matches_numpy(temperature):
    rng = np.random.default_rng(2)
    teacher, student = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))

    def softmax(x):
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    expected = temperature**2 * np.mean(
        -(softmax(teacher / temperature) * np.log(softmax(student / temperature))).sum(1)
    )
    got = distillation_loss(
        tf.constant(teacher, tf.float32), tf.constant(student, tf.float32), temperature
    )
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_distillation_loss_has_no_teacher_gradient():
    teacher = tf.Variable(tf.random.normal([3, 4]))
    student = tf.Variable(tf.random.normal([3, 4]))
    with tf.GradientTape() as tape:
        loss = distillation_loss(teacher, student, 2.0)
    grad_teacher, grad_student = tape.gradient(loss, [teacher, student])
    assert grad_teacher is None
    assert float(tf.reduce_sum(tf.abs(grad_student))) > 0
