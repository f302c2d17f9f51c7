"""Classification and distillation losses."""

import tensorflow as tf


def cross_entropy(labels, logits):
    """Mean softmax cross-entropy, -mean_i log softmax(logits_i)[labels_i], for integer labels."""
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits)
    )


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
