"""The attention figure of a MIL run (like Figure 4 of Ilse et al. 2018): test bags, one per row,
each instance with its weight above it, as PNG (matplotlib, Agg backend)."""

import numpy as np

from tfssl.plots import _pyplot, _save

MAX_INSTANCES_SHOWN = 16
GAP = 4  # pixels between instances


def attention_bags(bags, path, class_names=(), weight_name="attention"):
    """bags: dicts with 'instances' (n, H, W, C) in [0, 1], 'attention' (n,), 'label',
    'probabilities' and optionally 'instance_labels' (n,), 1 for a key instance (framed in red).
    Bags larger than MAX_INSTANCES_SHOWN show their highest-weighted instances, in bag order."""
    from matplotlib.patches import Rectangle

    plt = _pyplot()
    columns = min(max(len(b["attention"]) for b in bags), MAX_INSTANCES_SHOWN)
    height, width, channels = np.asarray(bags[0]["instances"]).shape[1:]
    fig, axes = plt.subplots(
        len(bags), 1, figsize=(0.75 * columns + 1.8, 1.05 * len(bags)), squeeze=False
    )
    for axis, bag in zip(axes[:, 0], bags):
        weights = np.asarray(bag["attention"])
        shown = np.arange(len(weights))
        if len(shown) > columns:
            shown = np.sort(np.argsort(-weights, kind="stable")[:columns])
        keys = np.asarray(bag.get("instance_labels", np.full(len(weights), -1)))
        canvas = np.ones((height, columns * (width + GAP), channels), np.float32)
        for column, k in enumerate(shown):
            left = column * (width + GAP)
            canvas[:, left : left + width] = np.clip(bag["instances"][k], 0, 1)
        image = canvas[..., 0] if channels == 1 else canvas
        axis.imshow(image, cmap="gray" if channels == 1 else None, vmin=0, vmax=1)
        top = int(np.argmax(weights))
        for column, k in enumerate(shown):
            left = column * (width + GAP)
            axis.text(
                left + width / 2,
                -1.5,
                f"{weights[k]:.2f}",
                ha="center",
                va="bottom",
                fontsize=7,
                fontweight="bold" if k == top else "normal",
            )
            if keys[k] == 1:
                axis.add_patch(
                    Rectangle((left - 0.5, -0.5), width, height, fill=False, ec="red", lw=1.5)
                )
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_visible(False)
        label = bag["label"]
        name = class_names[label] if label < len(class_names) else str(label)
        extra = f"\n{len(weights)} instances" if len(weights) > columns else ""
        p_true = float(np.asarray(bag["probabilities"])[label])
        axis.set_ylabel(f"{name}\np(true)={p_true:.2f}{extra}", rotation=0, ha="right", va="center")
    fig.suptitle(
        f"Test bags: each instance's {weight_name} weight (key instances framed in red)",
        fontsize=9,
    )
    return _save(fig, path)
