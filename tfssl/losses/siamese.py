"""Losses of the siamese self-supervised objectives (BYOL, SimSiam, MoCo v2), their momentum
schedule and MoCo's queue of keys, as pure functions.

Notation: for a batch of n images seen in two views, p1, p2 are the online network's predictions
(BYOL, SimSiam) or queries (MoCo) and z1, z2 the target network's projections (BYOL), the online
projections (SimSiam) or the keys (MoCo); cos(a, b) = a.b / (|a| |b|). Targets are constants: no
gradient flows into z (stop-gradient), whatever produced them.
"""

import math

import tensorflow as tf


def _unit(x):
    return tf.math.l2_normalize(tf.cast(x, tf.float32), -1)


def normalized_mse(p, z):
    """BYOL's regression loss per example (Grill et al. 2020, eq. 2):

        l(p, z) = || p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z)

    with z a constant (stop-gradient). Returns shape (n,).
    """
    return 2.0 - 2.0 * tf.reduce_sum(_unit(p) * tf.stop_gradient(_unit(z)), -1)


def byol_loss(p1, p2, z1, z2):
    """BYOL's symmetrised loss: each view's prediction regresses the target's projection of the
    other view,

        L = 1/n sum_i [ l(p1_i, z2_i) + l(p2_i, z1_i) ]       (in [0, 8])

    with l the normalised MSE above (the paper's L + L~, averaged over the batch).
    """
    return tf.reduce_mean(normalized_mse(p1, z2) + normalized_mse(p2, z1))


def negative_cosine(p, z):
    """SimSiam's D(p, z) = -cos(p, stopgrad(z)) per example (Chen & He 2021, eq. 1); shape (n,)."""
    return -tf.reduce_sum(_unit(p) * tf.stop_gradient(_unit(z)), -1)


def simsiam_loss(p1, p2, z1, z2):
    """SimSiam's symmetrised loss (eq. 2):

        L = 1/n sum_i [ D(p1_i, z2_i) / 2 + D(p2_i, z1_i) / 2 ]      (in [-1, 1])

    with D the negative cosine above; z1, z2 are the online projections, stop-gradiented.
    """
    return tf.reduce_mean(0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1))


def moco_infonce(queries, keys, queue, temperature=0.2):
    """MoCo's InfoNCE (He et al. 2020, eq. 1; MoCo v2 at temperature 0.2): with q, k L2-normalised
    and the queue's K rows (already unit keys of earlier batches) as negatives,

        logits_i = [ q_i.k_i, q_i.queue_1, ..., q_i.queue_K ] / temperature
        L        = 1/n sum_i -log softmax(logits_i)[0]

    Keys and queue are constants. Returns (loss, logits (n, 1 + K)); the positive is column 0.
    """
    q = _unit(queries)
    k = tf.stop_gradient(_unit(keys))
    queue = tf.stop_gradient(tf.cast(queue, tf.float32))
    positive = tf.reduce_sum(q * k, -1, keepdims=True)
    negatives = tf.matmul(q, queue, transpose_b=True)
    logits = tf.concat([positive, negatives], 1) / temperature
    labels = tf.zeros(tf.shape(q)[:1], tf.int32)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    return loss, logits


def enqueue(queue, pointer, keys):
    """MoCo's queue as a ring buffer: the n keys overwrite the n oldest rows, starting at `pointer`
    and wrapping around; returns (new queue, new pointer). Row r of the result is

        keys[j]    if r = (pointer + j) mod K for some j < n
        queue[r]   otherwise

    and the new pointer is (pointer + n) mod K. Needs n <= K.
    """
    size = tf.shape(queue)[0]
    count = tf.shape(keys)[0]
    pointer = tf.cast(pointer, tf.int32)
    rows = (pointer + tf.range(count)) % size
    updated = tf.tensor_scatter_nd_update(queue, rows[:, None], tf.cast(keys, queue.dtype))
    return updated, (pointer + count) % size


def byol_tau(step, total_steps, base=0.996):
    """BYOL's target decay at training step k of K (Grill et al. 2020, section 3.2):

        tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2

    tau_base at k = 0, rising to 1 at k = K.
    """
    progress = tf.cast(step, tf.float32) / float(max(total_steps, 1))
    return 1.0 - (1.0 - base) * (tf.cos(math.pi * progress) + 1.0) / 2.0


def default_queue_size(num_examples, global_batch):
    """MoCo's queue length scaled to the dataset: the largest power of two up to a tenth of the
    train images (4096 for CIFAR-10 or MNIST's 50-60k, as MoCo's CIFAR demo), at most 65,536 (the
    ImageNet value) and at least one global batch. A queue as long as the dataset would hold
    stale keys of the very image being contrasted as negatives."""
    tenth = max(num_examples // 10, 1)
    return int(max(min(2 ** int(math.log2(tenth)), 65536), global_batch))
