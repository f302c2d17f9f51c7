"""Bag-level likelihood, probabilities and ROC AUC for multiple-instance learning."""

import numpy as np
import tensorflow as tf


def bag_nll(labels, logits):
    """Mean negative log-likelihood of the bag labels.

    Two classes, logits (B, 1): the Bernoulli likelihood of Ilse et al. (2018), with
    theta = sigmoid(z): -[y log theta + (1 - y) log(1 - theta)] = softplus(z) - y z.
    K classes, logits (B, K): the softmax cross-entropy -log softmax(z)_y.
    """
    logits = tf.cast(logits, tf.float32)
    if logits.shape[-1] == 1:
        labels = tf.cast(tf.reshape(labels, [-1, 1]), tf.float32)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits)
    )


def bag_probabilities(logits):
    """(B, K) class probabilities: [1 - theta, theta] for one logit, else the softmax."""
    logits = tf.cast(logits, tf.float32)
    if logits.shape[-1] == 1:
        theta = tf.sigmoid(logits)
        return tf.concat([1.0 - theta, theta], -1)
    return tf.nn.softmax(logits)


def roc_auc(labels, scores):
    """Area under the ROC curve of binary labels against scores (the Mann-Whitney U statistic
    over positives x negatives, ties counting 1/2); nan without both classes."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, np.float64)
    positives, negatives = labels.sum(), (~labels).sum()
    if not positives or not negatives:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # Average 1-based rank within each group of tied scores.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def macro_auc(labels, probabilities):
    """ROC AUC of the positive class for two classes; else the mean one-vs-rest AUC."""
    probabilities = np.asarray(probabilities)
    if probabilities.shape[-1] == 2:
        return roc_auc(np.asarray(labels) == 1, probabilities[:, 1])
    values = [
        roc_auc(np.asarray(labels) == k, probabilities[:, k]) for k in range(probabilities.shape[1])
    ]
    return float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")
