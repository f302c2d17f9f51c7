"""Classification and distillation losses."""

import tensorflow as tf


def cross_entropy(labels, logits, class_weights=None):
    """Mean softmax cross-entropy for integer labels, optionally class-weighted:

        loss = mean_i w[y_i] * -log softmax(logits_i)[y_i]      (w = 1 without class_weights)

    i.e. each example's loss is scaled by its class's weight and divided by the batch size (as
    Keras' class_weight does); with scikit-learn's 'balanced' weights, w_c = n / (k * n_c), the
    weights average 1 over the labeled set, so the loss keeps its scale.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    if class_weights is not None:
        losses *= tf.gather(tf.constant(class_weights, tf.float32), labels)
    return tf.reduce_mean(losses)


def known_label_cross_entropy(labels, logits, class_weights=None):
    """Cross-entropy of the examples whose label is known (label >= 0), over the whole batch:

        loss = 1/B * sum_i [y_i >= 0] * w[y_i] * -log softmax(logits_i)[y_i]

    B counts every example, so each labeled image adds its own term whatever the share of
    labeled images in the batch (w as in cross_entropy).
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    known = tf.cast(labels >= 0, tf.float32)
    safe_labels = tf.maximum(labels, 0)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(safe_labels, logits) * known
    if class_weights is not None:
        losses *= tf.gather(tf.constant(class_weights, tf.float32), safe_labels)
    return tf.reduce_mean(losses)


def accuracy(labels, logits, k=1):
    """Fraction of examples whose label is among the k largest logits."""
    labels = tf.cast(labels, tf.int32)
    return tf.reduce_mean(
        tf.cast(tf.math.in_top_k(labels, tf.cast(logits, tf.float32), k), tf.float32)
    )


def distillation_loss(teacher_logits, student_logits, temperature=1.0):
    """Knowledge distillation (Hinton et al.; SimCLRv2's self-training stage).

        loss = T^2 * mean_i sum_c -softmax(t_i / T)_c * log softmax(s_i / T)_c

    The teacher's probabilities are constants (no gradient flows to the teacher).
    The T^2 factor keeps gradient magnitudes comparable across temperatures.
    """
    teacher_probs = tf.stop_gradient(
        tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / temperature)
    )
    student_log_probs = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature)
    return temperature**2 * tf.reduce_mean(-tf.reduce_sum(teacher_probs * student_log_probs, -1))
