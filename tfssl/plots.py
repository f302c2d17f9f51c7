"""The figures people expect from a run or a comparison, saved as PNG (matplotlib, Agg backend)."""

import os

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def label_efficiency(cells, path, labels=None):
    """Test accuracy against the fraction of labels (log x axis), one line per method: the mean
    over seeds, with error bars of one standard deviation where there are several seeds (cells as
    in tfssl/compare_report.py)."""
    plt = _pyplot()
    labels = labels or {}
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in dict.fromkeys(c["method"] for c in cells):
        points = sorted(
            (c["label_fraction"], c["top_1_accuracy"]) for c in cells if c["method"] == method
        )
        ax.errorbar(
            [100 * f for f, _ in points],
            [100 * s["mean"] for _, s in points],
            yerr=[100 * (s["std"] or 0.0) for _, s in points],
            marker="o",
            capsize=3,
            label=labels.get(method, method),
        )
    seeds = max(c["top_1_accuracy"]["n"] for c in cells)
    fractions = sorted({c["label_fraction"] for c in cells})
    ax.set_xscale("log")
    ax.set_xticks([100 * f for f in fractions], [f"{100 * f:g}%" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("labels used (% of the train split)")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(
        f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed (no error bars)", fontsize=9
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def view_pairs(first_views, second_views, path, columns=8):
    """A grid of augmented pairs: each column shows two views of one image."""
    plt = _pyplot()
    n = min(columns, len(first_views))
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3), squeeze=False)
    for i in range(n):
        for row, views in enumerate((first_views, second_views)):
            image = np.asarray(views[i])
            axes[row, i].imshow(
                image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1
            )
            axes[row, i].axis("off")
    fig.suptitle("SimCLR: two augmented views per image")
    return _save(fig, path)


def training_curves(
    scalars,
    path,
    tags=(
        "train/contrast_loss",
        "train/contrast_acc",
        "train/supervised_acc",
        "train/loss",
        "train/learning_rate",
    ),
):
    """One panel per tag present in `scalars` ({tag: [(step, value)]}, see
    train/summaries_io.py)."""
    plt = _pyplot()
    present = [t for t in tags if t in scalars]
    fig, axes = plt.subplots(
        1, max(len(present), 1), figsize=(3.6 * max(len(present), 1), 3), squeeze=False
    )
    for ax, tag in zip(axes[0], present):
        steps, values = zip(*scalars[tag])
        ax.plot(steps, values)
        ax.set_title(tag.split("/", 1)[-1])
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def pca_2d(features):
    """Projection of features (N, D) on their first two principal components."""
    centered = np.asarray(features, np.float64) - np.mean(features, 0)
    _, _, components = np.linalg.svd(centered, full_matrices=False)
    return centered @ components[:2].T


def embeddings(panels, labels, path, class_names=()):
    """Side-by-side 2-D PCA scatter plots coloured by class; panels = {title: features (N, D)}."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (title, features) in zip(axes[0], panels.items()):
        points = pca_2d(features)
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, _ = scatter.legend_elements()
    names = list(class_names) or [str(c) for c in sorted(set(np.asarray(labels).tolist()))]
    fig.legend(handles, names[: len(handles)], loc="center right", fontsize=7)
    return _save(fig, path)


def confusion_matrix(truth, predicted, num_classes):
    """counts[i, j] = number of examples of class i predicted as j."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (np.asarray(truth), np.asarray(predicted)), 1)
    return counts


def plot_confusion(truth, predicted, num_classes, path, class_names=(), title="confusion matrix"):
    plt = _pyplot()
    counts = confusion_matrix(truth, predicted, num_classes)
    fig, ax = plt.subplots(figsize=(0.5 * num_classes + 2, 0.5 * num_classes + 1.5))
    ax.imshow(counts, cmap="Blues")
    for i in range(num_classes):
        for j in range(num_classes):
            ax.text(
                j,
                i,
                counts[i, j],
                ha="center",
                va="center",
                fontsize=7,
                color="white" if counts[i, j] > counts.max() / 2 else "black",
            )
    names = list(class_names) or [str(i) for i in range(num_classes)]
    ax.set_xticks(range(num_classes), names, rotation=90, fontsize=7)
    ax.set_yticks(range(num_classes), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)
