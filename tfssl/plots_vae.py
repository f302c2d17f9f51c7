"""Figures of the semi-supervised VAE, written as PNG files with matplotlib's Agg backend."""

import numpy as np


def _show(axis, image):
    image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    if image.shape[-1] == 1:
        axis.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        axis.imshow(image)
    axis.set_xticks([])
    axis.set_yticks([])


def _figure(rows, cols):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(
        rows, cols, figsize=(0.8 * cols + 0.6, 0.8 * rows), squeeze=False
    )
    return pyplot, figure, axes


def save_analogy_figure(path, source_images, generated, class_names=None):
    """The paper's analogy figure: row 0 holds test images; below it, row y holds p(x|y, z_j) for
    each class y, where column j keeps z_j, the style inferred from source image j.

    source_images: (J, H, W, C) in [0, 1]; generated: (K, J, H, W, C), the decoder means."""
    num_classes, num_columns = generated.shape[:2]
    pyplot, figure, axes = _figure(num_classes + 1, num_columns)
    for j in range(num_columns):
        _show(axes[0, j], source_images[j])
        for y in range(num_classes):
            _show(axes[y + 1, j], generated[y, j])
    axes[0, 0].set_ylabel("x", rotation=0, labelpad=12)
    for y in range(num_classes):
        name = class_names[y] if class_names else str(y)
        axes[y + 1, 0].set_ylabel(f"y={name}", rotation=0, labelpad=18, fontsize=7)
    figure.suptitle("p(x|y,z): y fixed per row, z fixed per column", fontsize=8)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def save_sample_grid(path, images, columns=10):
    """A grid of images (N, H, W, C) in [0, 1], e.g. M1's samples from p(x|z), z ~ N(0, I)."""
    rows = int(np.ceil(len(images) / columns))
    pyplot, figure, axes = _figure(rows, columns)
    for index, axis in enumerate(axes.flat):
        if index < len(images):
            _show(axis, images[index])
        else:
            axis.axis("off")
    figure.suptitle("samples: E[x|z], z ~ N(0, I)", fontsize=8)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path
