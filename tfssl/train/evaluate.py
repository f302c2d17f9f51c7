"""Top-1 / top-5 accuracy and cross-entropy of a method's evaluated network on a split."""

import numpy as np
import tensorflow as tf


def evaluate(method, data, split, batch_size, max_batches=0, logits_fn=None):
    """Runs method.eval_logits (or logits_fn) over `split` in order; returns accuracies, loss and
    count."""
    logits_fn = logits_fn or method.compiled_eval_logits()
    correct_1 = correct_5 = loss_sum = 0.0
    count = 0
    for images, labels in data.eval_batches(method.eval_view, batch_size, split, max_batches):
        logits = tf.cast(logits_fn(images), tf.float32)
        labels = tf.cast(labels, tf.int32)
        k = min(5, logits.shape[-1])
        correct_1 += float(tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32)))
        correct_5 += float(tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, k), tf.float32)))
        loss_sum += float(
            tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        )
        count += int(labels.shape[0])
    if not count:
        return {
            "top_1_accuracy": float("nan"),
            "top_5_accuracy": float("nan"),
            "loss": float("nan"),
            "num_examples": 0,
        }
    return {
        "top_1_accuracy": correct_1 / count,
        "top_5_accuracy": correct_5 / count,
        "loss": loss_sum / count,
        "num_examples": count,
    }


def evaluate_all(method, cfg):
    """Accuracy (for methods with a classifier) plus the method's own eval figures, on
    cfg.eval_split."""
    metrics = {}
    if method.has_classifier():
        metrics = evaluate(method, method.data, cfg.eval_split, cfg.eval_batch_size, cfg.eval_steps)
    metrics.update(method.extra_eval_metrics(cfg.eval_split, cfg.eval_batch_size, cfg.eval_steps))
    return metrics


def predict_labels(method, data, split, batch_size):
    """(true labels, predicted labels) over a split, for confusion matrices and agreement."""
    logits_fn = method.compiled_eval_logits()
    truth, predicted = [], []
    for images, labels in data.eval_batches(method.eval_view, batch_size, split):
        predicted.append(np.argmax(logits_fn(images).numpy(), -1))
        truth.append(labels.numpy())
    return np.concatenate(truth), np.concatenate(predicted)


def metrics_text(metrics, number_format=".4g"):
    """One log line of metrics: key=value, floats in number_format."""
    return " ".join(
        f"{k}={v:{number_format}}" if isinstance(v, float) else f"{k}={v}"
        for k, v in metrics.items()
    )
