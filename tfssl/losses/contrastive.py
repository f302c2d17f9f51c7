"""NT-Xent, the SimCLR contrastive loss, with negatives from every replica."""

import tensorflow as tf

LARGE_NUM = 1e9


def gather_across_replicas(tensor):
    """(global tensor, offset of this replica's rows). Gradients flow back to their replica.

    Each replica places its rows in a zero tensor of the global size and the
    replicas sum them, so only all_reduce is used (all_gather next to
    synchronized batch norm mis-ordered the collectives under MirroredStrategy).
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensor, 0
    replicas, replica_id = context.num_replicas_in_sync, context.replica_id_in_sync_group
    placed = tf.scatter_nd([[replica_id]], tensor[tf.newaxis], [replicas, *tensor.shape])
    gathered = context.all_reduce(tf.distribute.ReduceOp.SUM, placed)
    return tf.reshape(gathered, [-1, *tensor.shape[1:]]), replica_id * tensor.shape[0]


def nt_xent(projections_1, projections_2, temperature=0.5, hidden_norm=True):
    """Normalised-temperature cross-entropy over two views of a batch.

    For local anchors a_i = z1_i and b_i = z2_i (i < n), and the global batch of
    N = n * replicas pairs gathered from every replica (A, B), with
    sim(u, v) = u.v / temperature and u, v L2-normalised when hidden_norm:

        loss_a(i) = -log softmax([sim(a_i, B_j)]_j ++ [sim(a_i, A_j)]_{j != i})[positive B_i]
        loss_b(i) = the same with the roles of A and B swapped
        loss      = mean_i (loss_a(i) + loss_b(i))

    Each anchor has 2N - 2 negatives (as in the official SimCLR code). The
    self-similarity sim(a_i, A_i) is masked out with -1e9.

    Returns (loss, logits, labels): logits are [ab, aa] for the local anchors
    of the first view, shape (n, 2N), and labels their one-hot targets, for
    the contrast accuracy and entropy metrics.
    """
    z1 = tf.cast(projections_1, tf.float32)
    z2 = tf.cast(projections_2, tf.float32)
    if hidden_norm:
        z1 = tf.math.l2_normalize(z1, -1)
        z2 = tf.math.l2_normalize(z2, -1)
    all_z1, offset = gather_across_replicas(z1)
    all_z2, _ = gather_across_replicas(z2)
    global_size = tf.shape(all_z1)[0]
    positives = tf.range(tf.shape(z1)[0]) + offset
    labels = tf.one_hot(positives, 2 * global_size)
    self_mask = tf.one_hot(positives, global_size) * LARGE_NUM

    logits_aa = tf.matmul(z1, all_z1, transpose_b=True) / temperature - self_mask
    logits_bb = tf.matmul(z2, all_z2, transpose_b=True) / temperature - self_mask
    logits_ab = tf.matmul(z1, all_z2, transpose_b=True) / temperature
    logits_ba = tf.matmul(z2, all_z1, transpose_b=True) / temperature
    logits_a = tf.concat([logits_ab, logits_aa], 1)
    loss_a = tf.nn.softmax_cross_entropy_with_logits(labels, logits_a)
    loss_b = tf.nn.softmax_cross_entropy_with_logits(labels, tf.concat([logits_ba, logits_bb], 1))
    return tf.reduce_mean(loss_a + loss_b), logits_a, labels


def contrast_metrics(logits, labels):
    """Contrast accuracy (positive ranked first) and mean entropy of the softmax over candidates."""
    accuracy = tf.reduce_mean(
        tf.cast(tf.equal(tf.argmax(logits, 1), tf.argmax(labels, 1)), tf.float32)
    )
    probabilities = tf.nn.softmax(logits)
    entropy = -tf.reduce_mean(tf.reduce_sum(probabilities * tf.math.log(probabilities + 1e-8), 1))
    return {"contrast_acc": accuracy, "contrast_entropy": entropy}
