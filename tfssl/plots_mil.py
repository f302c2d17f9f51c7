"""The attention figure of a MIL run (like Figure 4 of Ilse et al. 2018): test bags, one per row,
each instance with its weight above it, as PNG (matplotlib, Agg backend)."""

import numpy as np

from tfssl.plots import _pyplot, _save

MAX_INSTANCES_SHOWN = 16


def attention_bags(bags, path, class_names=(), weight_name="attention"):
    """bags: dicts with 'instances' (n, H, W, C) in [0, 1], 'attention' (n,), 'label',
    'probabilities' and optionally 'instance_labels' (n,), 1 for a key instance (framed in red).
    Bags larger than MAX_INSTANCES_SHOWN show their highest-weighted instances."""
    plt = _pyplot()
    columns = min(max(len(b["attention"]) for b in bags), MAX_INSTANCES_SHOWN)
    fig, axes = plt.subplots(
        len(bags), columns, figsize=(0.95 * columns + 1.6, 1.25 * len(bags)), squeeze=False
    )
    for row, bag in enumerate(bags):
        weights = np.asarray(bag["attention"])
        shown = np.arange(len(weights))
        if len(shown) > columns:
            shown = np.sort(np.argsort(-weights, kind="stable")[:columns])
        keys = np.asarray(bag.get("instance_labels", np.full(len(weights), -1)))
        top = int(np.argmax(weights))
        for column, axis in enumerate(axes[row]):
            axis.set_xticks([])
            axis.set_yticks([])
            if column >= len(shown):
                axis.axis("off")
                continue
            k = shown[column]
            image = np.clip(np.asarray(bag["instances"][k], np.float32), 0, 1)
            if image.shape[-1] == 1:
                axis.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
            else:
                axis.imshow(image)
            axis.set_title(f"{weights[k]:.2f}", fontsize=8, fontweight="bold" if k == top else None)
            color = "red" if keys[k] == 1 else "lightgray"
            for spine in axis.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(2.5 if keys[k] == 1 else 0.8)
        label = bag["label"]
        name = class_names[label] if label < len(class_names) else str(label)
        probability = float(np.asarray(bag["probabilities"])[label])
        extra = f" ({len(weights)} inst.)" if len(weights) > columns else ""
        axes[row, 0].set_ylabel(
            f"{name}\np(true)={probability:.2f}{extra}", rotation=0, ha="right", va="center"
        )
    fig.suptitle(
        f"Test bags: each instance's {weight_name} weight (key instances framed in red)",
        fontsize=10,
    )
    return _save(fig, path)
