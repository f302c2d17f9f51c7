"""Figures of the final eval, written into the run directory: confusion_matrix.png, and for
binary tasks roc_curve.png (the ROC of the positive class, with the 0.5 and the --val_split
operating points)."""

import logging
import os

import numpy as np

from tfssl import plots
from tfssl.train import metrics

log = logging.getLogger("tfssl")


def plot_roc(is_positive, scores, path, title, thresholds=()):
    """The ROC curve with its AUROC, and a marker at each (label, threshold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = metrics.roc_curve(is_positive, scores)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(
        np.r_[0, fpr], np.r_[0, tpr], label=f"AUROC {metrics.binary_auroc(is_positive, scores):.3f}"
    )
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1)
    for name, threshold in thresholds:
        at = metrics.binary_metrics(is_positive, scores >= threshold)
        ax.plot(1 - at["specificity"], at["sensitivity"], "o", label=name)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write(run_dir, predictions, class_names, eval_metrics, split):
    """Both figures from (labels, probabilities, positive class index) of the final eval."""
    labels, probabilities, positive = predictions
    if not len(labels):
        return
    num_classes = probabilities.shape[1]
    plots.plot_confusion(
        labels,
        np.argmax(probabilities, -1),
        num_classes,
        os.path.join(run_dir, "confusion_matrix.png"),
        class_names,
        f"confusion matrix on {split}",
    )
    if num_classes == 2:
        marks = [("threshold 0.5", 0.5)]
        at = eval_metrics.get("at_val_threshold")
        if at:
            marks.append((f"Youden on {at['split']}: {at['threshold']:.3g}", at["threshold"]))
        name = class_names[positive] if class_names else str(positive)
        plot_roc(
            labels == positive,
            probabilities[:, positive],
            os.path.join(run_dir, "roc_curve.png"),
            f"ROC of class {name} on {split}",
            marks,
        )
