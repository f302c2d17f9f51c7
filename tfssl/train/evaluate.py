"""Evaluation of a method's classifier on a split: top-1/top-5 accuracy, cross-entropy, and the
metrics of tfssl/train/metrics.py (balanced accuracy, AUROC, per-class precision/recall/F1, the
confusion matrix; sensitivity and specificity for binary tasks, at 0.5 and, with --val_split, at
the threshold that split chooses)."""

import logging

import numpy as np
import tensorflow as tf

from tfssl.errors import ConfigError
from tfssl.train import metrics as classification

log = logging.getLogger("tfssl")


def predict(method, data, split, batch_size, max_batches=0, logits_fn=None):
    """(labels, logits) over `split`, in order."""
    logits_fn = logits_fn or method.compiled_eval_logits()
    labels, logits = [], []
    for images, batch_labels in data.eval_batches(method.eval_view, batch_size, split, max_batches):
        logits.append(tf.cast(logits_fn(images), tf.float32).numpy())
        labels.append(batch_labels.numpy())
    if not labels:
        return np.zeros([0], np.int64), np.zeros([0, data.info.num_classes], np.float32)
    return np.concatenate(labels).astype(np.int64), np.concatenate(logits)


def softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(-1, keepdims=True)


def positive_class(cfg, class_names):
    """The index of --positive_class (a name or an index; default 1)."""
    value = cfg.positive_class
    if not value:
        return 1
    if value in class_names:
        return list(class_names).index(value)
    if value.isdigit() and int(value) < len(class_names):
        return int(value)
    raise ConfigError(
        f"--positive_class={value} is not a class: use one of {', '.join(class_names)} or 0..1"
    )


def evaluate(method, data, split, batch_size, max_batches=0, logits_fn=None, positive=1):
    """Accuracies, loss, count and the classification report of tfssl/train/metrics.py."""
    labels, logits = predict(method, data, split, batch_size, max_batches, logits_fn)
    return scores(labels, logits, positive)


def scores(labels, logits, positive=1):
    """The metrics of `evaluate` from labels and logits."""
    if not len(labels):
        nan = float("nan")
        return {"top_1_accuracy": nan, "top_5_accuracy": nan, "loss": nan, "num_examples": 0}
    probabilities = softmax(logits.astype(np.float64))
    k = min(5, logits.shape[-1])
    top_k = np.argsort(-logits, -1, kind="stable")[:, :k]
    log_probabilities = np.log(np.maximum(probabilities[np.arange(len(labels)), labels], 1e-300))
    return {
        "top_1_accuracy": float(np.mean(np.argmax(logits, -1) == labels)),
        "top_5_accuracy": float(np.mean((top_k == labels[:, None]).any(-1))),
        "loss": float(-np.mean(log_probabilities)),
        "num_examples": len(labels),
        **classification.classification_report(labels, probabilities, positive),
    }


def threshold_metrics(method, cfg, positive):
    """With --val_split on a binary task: Youden's-J threshold on the val split's P(positive), and
    the eval split's metrics at that threshold."""
    data = method.data
    val_labels, val_logits = predict(method, data, cfg.val_split, cfg.eval_batch_size)
    threshold, j = classification.youden_threshold(
        val_labels == positive, softmax(val_logits.astype(np.float64))[:, positive]
    )
    labels, logits = predict(method, data, cfg.eval_split, cfg.eval_batch_size, cfg.eval_steps)
    scores = softmax(logits.astype(np.float64))[:, positive]
    at = classification.binary_metrics(labels == positive, scores >= threshold)
    return {
        "split": cfg.val_split,
        "positive_class": positive,
        "threshold": threshold,
        "val_youden_j": j,
        "val_auroc": classification.binary_auroc(
            val_labels == positive, softmax(val_logits.astype(np.float64))[:, positive]
        ),
        **at,
    }


def evaluate_all(method, cfg):
    """Accuracy and the classification metrics (for methods with a classifier) plus the method's
    own eval figures, on cfg.eval_split; the binary threshold chosen on cfg.val_split."""
    metrics = {}
    if method.has_classifier():
        names = method.data.info.class_names
        positive = positive_class(cfg, names) if method.data.info.num_classes == 2 else 1
        labels, logits = predict(
            method, method.data, cfg.eval_split, cfg.eval_batch_size, cfg.eval_steps
        )
        metrics = scores(labels, logits, positive)
        method.eval_predictions = (labels, softmax(logits.astype(np.float64)), positive)
        if method.data.info.num_classes == 2:
            metrics["positive_class"] = names[positive] if names else str(positive)
            if cfg.val_split and cfg.val_split == cfg.eval_split:
                log.warning("--val_split is the eval split: no threshold is chosen on it")
            elif cfg.val_split:
                metrics["at_val_threshold"] = threshold_metrics(method, cfg, positive)
    metrics.update(method.extra_eval_metrics(cfg.eval_split, cfg.eval_batch_size, cfg.eval_steps))
    return metrics


def scalar_metrics(metrics, prefix=""):
    """The numbers of a (nested) metrics dict, flattened: {'at_val_threshold/sensitivity': ...};
    per-class lists become 'recall/<i>' entries; the confusion matrix stays out."""
    flat = {}
    for name, value in metrics.items():
        if isinstance(value, dict):
            flat.update(scalar_metrics(value, f"{prefix}{name}/"))
        elif isinstance(value, list) and name != "confusion_matrix":
            flat.update(
                {
                    f"{prefix}{name}/{i}": v
                    for i, v in enumerate(value)
                    if isinstance(v, (int, float))
                }
            )
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix + name] = value
    return flat


SUMMARY_KEYS = (
    "top_1_accuracy",
    "balanced_accuracy",
    "auroc",
    "sensitivity",
    "specificity",
    "loss",
    "num_examples",
)


def confusion_text(metrics, class_names):
    """The confusion matrix as a Markdown table (rows: true class, columns: predicted)."""
    matrix = metrics.get("confusion_matrix")
    if not matrix:
        return ""
    names = list(class_names) or [str(i) for i in range(len(matrix))]
    lines = ["| true \\ predicted | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(str(v) for v in row) + " |" for n, row in zip(names, matrix)]
    return "\n".join(lines)


def predict_labels(method, data, split, batch_size):
    """(true labels, predicted labels) over a split, for confusion matrices and agreement."""
    labels, logits = predict(method, data, split, batch_size)
    return labels, np.argmax(logits, -1)


def metrics_text(metrics, number_format=".4g"):
    """One log line of metrics: the main ones first, key=value; the binary threshold's metrics
    after 'at threshold t (val split):'; per-class lists and matrices are left to result.json."""
    shown = {k: metrics[k] for k in SUMMARY_KEYS if k in metrics}
    shown.update(
        {k: v for k, v in metrics.items() if k not in shown and isinstance(v, (int, float, str))}
    )
    text = " ".join(
        f"{k}={v:{number_format}}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()
    )
    at = metrics.get("at_val_threshold")
    if at:
        text += f" | at threshold {at['threshold']:.4g} (Youden's J on {at['split']}): " + " ".join(
            f"{k}={at[k]:{number_format}}"
            for k in ("sensitivity", "specificity", "balanced_accuracy", "accuracy")
        )
    return text
