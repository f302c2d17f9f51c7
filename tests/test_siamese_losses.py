"""BYOL, SimSiam and MoCo losses, the tau schedule, the queue and the k-NN classifier, against
numpy written from the papers' formulas."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfssl.losses.siamese import (
    byol_loss,
    byol_tau,
    default_queue_size,
    enqueue,
    moco_infonce,
    simsiam_loss,
)
from tfssl.train.knn import knn_classify


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def random_pairs(seed, n=3, d=4):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, d)) for _ in range(4)]


def test_byol_loss_by_hand():
    p1, p2, z1, z2 = random_pairs(0)
    expected = 0.0
    for i in range(3):  # ||p/|p| - z/|z|||^2 for each direction, summed, averaged over the batch
        expected += np.sum((unit(p1[i]) - unit(z2[i])) ** 2) + np.sum(
            (unit(p2[i]) - unit(z1[i])) ** 2
        )
    loss = byol_loss(*(tf.constant(x, tf.float32) for x in (p1, p2, z1, z2)))
    assert float(loss) == pytest.approx(expected / 3, rel=1e-5)
    # Equal directions give 0 whatever the lengths; opposite ones the maximum, 8.
    same = tf.constant(p1, tf.float32)
    assert float(byol_loss(same, same, 3 * same, 0.5 * same)) == pytest.approx(0, abs=1e-5)
    assert float(byol_loss(same, same, -same, -same)) == pytest.approx(8, rel=1e-5)


def test_simsiam_loss_by_hand():
    p1, p2, z1, z2 = random_pairs(1)

    def cos(a, b):
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    expected = np.mean([-cos(p1[i], z2[i]) / 2 - cos(p2[i], z1[i]) / 2 for i in range(3)])
    loss = simsiam_loss(*(tf.constant(x, tf.float32) for x in (p1, p2, z1, z2)))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss_fn", [byol_loss, simsiam_loss])
def test_no_gradient_reaches_the_targets(loss_fn):
    p1, p2, z1, z2 = (tf.Variable(x, dtype=tf.float32) for x in random_pairs(2))
    with tf.GradientTape() as tape:
        loss = loss_fn(p1, p2, z1, z2)
    grads = tape.gradient(loss, [p1, p2, z1, z2])
    assert grads[2] is None and grads[3] is None
    assert np.abs(grads[0].numpy()).sum() > 0 and np.abs(grads[1].numpy()).sum() > 0


def test_moco_infonce_by_hand():
    rng = np.random.default_rng(3)
    q, k = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    queue = unit(rng.normal(size=(5, 4)))
    temperature = 0.2
    expected = 0.0
    for i in range(3):
        positive = math.exp(unit(q[i]) @ unit(k[i]) / temperature)
        negatives = sum(math.exp(unit(q[i]) @ queue[j] / temperature) for j in range(5))
        expected += -math.log(positive / (positive + negatives))
    qv, kv, queue_v = (tf.Variable(x, dtype=tf.float32) for x in (q, k, queue))
    with tf.GradientTape() as tape:
        loss, logits = moco_infonce(qv, kv, queue_v, temperature)
    assert float(loss) == pytest.approx(expected / 3, rel=1e-5)
    assert logits.shape == (3, 6)
    grads = tape.gradient(loss, [qv, kv, queue_v])
    assert grads[1] is None and grads[2] is None and np.abs(grads[0].numpy()).sum() > 0


def test_enqueue_is_a_ring_buffer():
    queue = np.arange(10, dtype=np.float32).reshape(5, 2)
    expected, pointer = queue.copy(), 0
    state = (tf.constant(queue), tf.constant(0))
    for step in range(4):  # 3 keys at a time into 5 rows: wraps on the 2nd and 4th enqueue
        keys = 100 * (step + 1) + np.arange(6, dtype=np.float32).reshape(3, 2)
        state = enqueue(state[0], state[1], tf.constant(keys))
        for j in range(3):
            expected[(pointer + j) % 5] = keys[j]
        pointer = (pointer + 3) % 5
        np.testing.assert_array_equal(state[0].numpy(), expected)
        assert int(state[1]) == pointer


def test_byol_tau_schedule():
    total, base = 1000, 0.996
    for step in (0, 1, 250, 500, 999, 1000):
        expected = 1 - (1 - base) * (math.cos(math.pi * step / total) + 1) / 2
        assert float(byol_tau(tf.constant(step, tf.int64), total, base)) == pytest.approx(
            expected, abs=1e-7
        )
    assert float(byol_tau(0, total, base)) == pytest.approx(base)
    assert float(byol_tau(total, total, base)) == pytest.approx(1.0)


def test_default_queue_size_scales_with_the_dataset():
    assert default_queue_size(60000, 256) == 4096  # MNIST / Fashion-MNIST
    assert default_queue_size(50000, 256) == 4096  # CIFAR-10, as MoCo's CIFAR demo
    assert default_queue_size(1_281_167, 256) == 65536  # ImageNet, as the paper
    assert default_queue_size(546, 64) == 64  # BreastMNIST: at least one batch


def numpy_weighted_knn(bank, bank_labels, queries, num_classes, k, temperature):
    """InstDisc's weighted vote, one query at a time."""
    bank, queries = unit(bank), unit(queries)
    predictions = []
    for q in queries:
        similarity = bank @ q
        nearest = np.argsort(-similarity)[:k]
        scores = np.zeros(num_classes)
        for j in nearest:
            scores[bank_labels[j]] += np.exp(similarity[j] / temperature)
        predictions.append(np.argmax(scores))
    return np.array(predictions)


@pytest.mark.parametrize("k,temperature", [(1, 0.1), (7, 0.1), (30, 0.5), (500, 0.07)])
def test_knn_classifier_matches_numpy(k, temperature):
    rng = np.random.default_rng(k)
    centres = rng.normal(size=(4, 8))
    bank_labels = rng.integers(0, 4, 300)
    bank = centres[bank_labels] + 1.5 * rng.normal(size=(300, 8))
    query_labels = rng.integers(0, 4, 1100)  # more than one chunk of queries
    queries = centres[query_labels] + 1.5 * rng.normal(size=(1100, 8))
    expected = numpy_weighted_knn(bank, bank_labels, queries, 4, k, temperature)
    predicted = knn_classify(bank, bank_labels, queries, 4, k, temperature)
    np.testing.assert_array_equal(predicted, expected)
    assert np.mean(expected == query_labels) > 0.4  # not vacuous: the classes are separable


def test_knn_weights_are_not_majority_votes():
    """One close neighbour of class 1 outvotes two distant ones of class 0 at a low temperature,
    and loses to them at a high one (where the weights are nearly equal)."""
    bank = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    labels = np.array([1, 0, 0])
    query = np.array([[1.0, 0.05]])
    assert knn_classify(bank, labels, query, 2, k=3, temperature=0.1)[0] == 1
    assert knn_classify(bank, labels, query, 2, k=3, temperature=10.0)[0] == 0
