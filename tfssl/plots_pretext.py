"""Figures of the pretext tasks (PNG, matplotlib's Agg backend): rows of images with captions."""

import numpy as np

from tfssl.plots import _pyplot, _save


def _show(axis, image):
    image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    if image.shape[-1] == 1:
        axis.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        axis.imshow(image)
    axis.set_xticks([])
    axis.set_yticks([])


def image_rows(path, rows, title, captions=None, correct=None):
    """A grid with one row per (label, images) pair in `rows`, images (N, H, W, C) in [0, 1].
    captions[r][i] is written under image i of row r, green if correct[r][i], red if not."""
    plt = _pyplot()
    num_rows, num_cols = len(rows), max(len(images) for _, images in rows)
    fig, axes = plt.subplots(
        num_rows, num_cols, figsize=(1.3 * num_cols + 1.2, 1.45 * num_rows), squeeze=False
    )
    for r, (label, images) in enumerate(rows):
        for i in range(num_cols):
            axis = axes[r, i]
            if i >= len(images):
                axis.axis("off")
                continue
            _show(axis, images[i])
            if captions is not None and captions[r] is not None:
                color = "black"
                if correct is not None and correct[r] is not None:
                    color = "green" if correct[r][i] else "red"
                axis.set_xlabel(captions[r][i], fontsize=7, color=color)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def mosaic(tiles, grid=3, gap=1):
    """(grid², t, t, C) tiles -> one (grid t + (grid - 1) gap)² image, tiles row by row, white
    gaps between them."""
    tile, channels = tiles.shape[1], tiles.shape[-1]
    side = grid * tile + (grid - 1) * gap
    image = np.ones([side, side, channels], np.float32)
    for i, t in enumerate(tiles):
        top, left = (i // grid) * (tile + gap), (i % grid) * (tile + gap)
        image[top : top + tile, left : left + tile] = t
    return image
