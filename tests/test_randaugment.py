"""FixMatch's strong augmentation: every operation against numpy (PIL for histogram equalisation),
on grayscale and colour images, eagerly and inside tf.data; RandAugment + Cutout as seeded views."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from tfssl.data import randaugment as ra


def uint8_image(channels, size=24, seed=0):
    """Random 8-bit levels 10..139 as floats k / 255, so 8-bit operations are exact (and the
    histogram is narrow enough for equalisation and auto-contrast to change it)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(10, 140, (size, size, channels)) / 255.0).astype(np.float32)


def np_gray(x):
    if x.shape[-1] == 1:
        return x
    return (x @ np.array([0.2989, 0.5870, 0.1140], np.float32))[..., None]


def np_blend(degenerate, x, factor):
    return np.clip(degenerate + factor * (x - degenerate), 0, 1)


def np_sharpness(x, factor):
    """Blend with the 3x3 smoothing [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13; border pixels kept."""
    height, width, _ = x.shape
    smooth = x.copy()
    neighbours = sum(
        x[1 + dy : height - 1 + dy, 1 + dx : width - 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )
    smooth[1:-1, 1:-1] = (neighbours + 4 * x[1:-1, 1:-1]) / 13
    return np_blend(smooth, x, factor)


def np_auto_contrast(x):
    low, high = x.min((0, 1)), x.max((0, 1))
    return np.where(high > low, (x - low) / np.where(high > low, high - low, 1), x)


def pil_equalize(x):
    levels = np.round(x * 255).astype(np.uint8)
    channels = [
        np.asarray(ImageOps.equalize(Image.fromarray(levels[..., c]))) for c in range(x.shape[-1])
    ]
    return np.stack(channels, -1) / 255.0


def np_sample(x, matrix):
    """Output (x, y) reads the input at (a x + b y + c, d x + e y + f), bilinearly, with every
    neighbour outside the image read as 0."""
    a, b, c, d, e, f = matrix
    height, width, _ = x.shape
    rows, cols = np.mgrid[0:height, 0:width]
    sx, sy = a * cols + b * rows + c, d * cols + e * rows + f
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    out = np.zeros_like(x)
    for yy, wy in ((y0, 1 - (sy - y0)), (y0 + 1, sy - y0)):
        for xx, wx in ((x0, 1 - (sx - x0)), (x0 + 1, sx - x0)):
            inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
            read = x[np.clip(yy, 0, height - 1), np.clip(xx, 0, width - 1)]
            out += (wy * wx * inside)[..., None] * read
    return out


def np_cutout(x, cy, cx, side):
    out = x.copy()
    top, left = cy - side // 2, cx - side // 2
    out[max(top, 0) : max(top + side, 0), max(left, 0) : max(left + side, 0)] = 0.5
    return out


CENTER = (24 - 1) / 2
ANGLE = 0.4  # radians, counterclockwise
COS, SIN = np.cos(ANGLE), np.sin(ANGLE)
# name: (tf op on an image, numpy expectation)
OPS = {
    "brightness": (lambda x: ra.brightness(x, 1.6), lambda x: np.clip(1.6 * x, 0, 1)),
    "color": (lambda x: ra.color(x, 0.3), lambda x: np_blend(np_gray(x), x, 0.3)),
    "contrast": (lambda x: ra.contrast(x, 1.7), lambda x: np_blend(np_gray(x).mean(), x, 1.7)),
    "sharpness": (lambda x: ra.sharpness(x, 1.8), lambda x: np_sharpness(x, 1.8)),
    "auto_contrast": (ra.auto_contrast, np_auto_contrast),
    "equalize": (ra.equalize, pil_equalize),
    "posterize": (
        lambda x: ra.posterize(x, 3 + 2),
        lambda x: (np.round(x * 255).astype(int) >> 3 << 3) / 255,
    ),
    "solarize": (
        lambda x: ra.solarize(x, 0.4),
        lambda image: np.where(image >= 0.4, 1 - image, image),
    ),
    "shear_x": (
        lambda x: ra.shear_x(x, 0.25),
        lambda x: np_sample(x, [1, 0.25, -0.25 * CENTER, 0, 1, 0]),
    ),
    "shear_y": (
        lambda x: ra.shear_y(x, -0.3),
        lambda x: np_sample(x, [1, 0, 0, -0.3, 1, 0.3 * CENTER]),
    ),
    "translate": (lambda x: ra.translate(x, 3, -2), lambda x: np_sample(x, [1, 0, -3, 0, 1, 2])),
    "rotate": (
        lambda x: ra.rotate(x, tf.constant(ANGLE)),
        lambda x: np_sample(
            x,
            [
                COS,
                -SIN,
                CENTER - COS * CENTER + SIN * CENTER,
                SIN,
                COS,
                CENTER - SIN * CENTER - COS * CENTER,
            ],
        ),
    ),
    "cutout": (lambda x: ra.cutout(x, 10, 2, 5), lambda x: np_cutout(x, 10, 2, 5)),
}


@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "rgb"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_matches_numpy_eagerly_and_in_tf_data(name, channels):
    op, expected_fn = OPS[name]
    images = np.stack([uint8_image(channels, seed=s) for s in range(3)])
    expected = np.stack([expected_fn(x) for x in images])
    eager = np.stack([op(tf.constant(x)).numpy() for x in images])
    ds = tf.data.Dataset.from_tensor_slices(images).map(
        tf.autograph.experimental.do_not_convert(op)
    )
    in_data = np.stack(list(ds.as_numpy_iterator()))
    tolerance = 1e-6 if name in ("equalize", "posterize", "cutout") else 2e-5
    np.testing.assert_allclose(eager, expected, atol=tolerance)
    np.testing.assert_allclose(in_data, expected, atol=tolerance)
    assert eager.shape == images.shape and eager.min() >= 0 and eager.max() <= 1
    if name != "color" or channels == 3:  # saturation means nothing on one channel
        assert not np.allclose(eager, images, atol=1e-3), "the op changed nothing"


def test_color_is_the_identity_on_grayscale():
    x = uint8_image(1)
    np.testing.assert_allclose(ra.color(tf.constant(x), 1.9).numpy(), x, atol=1e-7)


def test_equalize_leaves_a_flat_image_alone():
    flat = np.full((6, 6, 1), 0.4, np.float32)
    np.testing.assert_allclose(ra.equalize(tf.constant(flat)).numpy(), np.round(0.4 * 255) / 255)


@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "rgb"])
def test_every_randaugment_op_keeps_shape_and_range_in_tf_data(channels):
    image = uint8_image(channels)
    pairs = [(i, m) for i in range(len(ra.OP_NAMES)) for m in (-0.8, 0.5)]
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant([i for i, _ in pairs]), tf.constant([m for _, m in pairs], tf.float32))
    ).map(lambda i, m: ra.apply_op(tf.constant(image), i, m))
    for (index, magnitude), out in zip(pairs, ds.as_numpy_iterator()):
        eager = ra.apply_op(tf.constant(image), index, magnitude).numpy()
        np.testing.assert_allclose(out, eager, atol=1e-6, err_msg=ra.OP_NAMES[index])
        assert out.shape == image.shape and 0 <= out.min() and out.max() <= 1


def test_randaugment_magnitudes_map_to_the_documented_parameters():
    image = tf.constant(uint8_image(3))
    index = {name: i for i, name in enumerate(ra.OP_NAMES)}
    cases = {
        "brightness": (-0.5, ra.brightness(image, 0.55)),
        "shear_y": (0.5, ra.shear_y(image, 0.15)),
        "translate_x": (-1.0, ra.translate(image, -7, 0)),  # round(0.3 * 24) pixels
        "solarize": (-0.25, ra.solarize(image, 0.75)),
        "posterize": (0.9, ra.posterize(image, 4)),
    }
    for name, (magnitude, expected) in cases.items():
        got = ra.apply_op(image, index[name], magnitude)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6, err_msg=name)


@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "rgb"])
def test_strong_view_is_seeded_the_same_eagerly_and_in_tf_data(channels):
    image = tf.constant(uint8_image(channels, size=16))
    seeds = tf.constant([[5, i] for i in range(4)], tf.int64)
    eager = np.stack([ra.strong_view(image, s).numpy() for s in seeds])
    ds = tf.data.Dataset.from_tensor_slices(seeds).map(
        lambda s: ra.strong_view(image, s), num_parallel_calls=4
    )
    np.testing.assert_allclose(np.stack(list(ds.as_numpy_iterator())), eager, atol=1e-6)
    assert len({x.tobytes() for x in eager}) == len(eager)  # the seed matters
    # Cutout of half the side: a square of mid-gray (clipped at the border) in every view
    assert all(np.sum(np.all(x == 0.5, -1)) >= 4 * 4 for x in eager)
    assert ra.strong_view(image, seeds[0], num_ops=0, cutout_fraction=0.0).numpy() == pytest.approx(
        image.numpy()
    )


def test_random_cutout_square_has_the_asked_side():
    image = tf.zeros([20, 20, 1])
    for i in range(20):
        out = ra.random_cutout(image, 0.3, tf.constant([1, i], tf.int64)).numpy()[..., 0]
        rows, cols = np.nonzero(out == 0.5)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert height <= 6 and width <= 6 and out.sum() == 0.5 * height * width
        assert (height == 6 or rows.min() == 0 or rows.max() == 19) and (
            width == 6 or cols.min() == 0 or cols.max() == 19
        )
