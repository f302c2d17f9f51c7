"""FixMatch's strong augmentation: RandAugment-style operations, then Cutout, as pure seeded ops.

Every operation maps a float image (H, W, C) in [0, 1], C = 1 or 3, to one of the same shape and
range. The random ones take a stateless seed (a shape-[2] integer tensor), so a seed gives the same
image eagerly, inside tf.function and inside tf.data, as tfssl/data/augment.py's do. Keras 3's
RandAugment and RandomErasing layers draw from a stateful seed generator instead: their images do
not follow from an element's seed, so a resumed run would not see the same stream.

The operations and their ranges are FixMatch's RandAugment variant (Sohn et al. 2020, Table 12;
google-research/fixmatch), with the colour ops defined as PIL's ImageEnhance defines them:
blend(degenerate, image, factor) = degenerate + factor * (image - degenerate), clipped to [0, 1].

    identity, auto_contrast, equalize    no magnitude
    brightness, color, contrast,         factor 1 + 0.9 m in [0.1, 1.9]; degenerate: black, the
      sharpness                          grayscale image, its mean gray level, a 3x3 smoothing
    rotate                               30 m degrees
    shear_x, shear_y                     0.3 m (output x reads input x + 0.3 m (y - centre))
    translate_x, translate_y             round(0.3 m size) pixels
    solarize                             pixels >= 1 - |m| are inverted
    posterize                            8 - round(4 |m|) bits kept

m is the magnitude, uniform in [-1, 1] (random sign). Each step of randaugment() picks one of the
14 operations uniformly and applies it with probability 0.5 (FixMatch's choice), num_ops times.
Geometric operations fill with black; on grayscale images color is the identity. The ops have no
Python control flow on tensors, so autograph is skipped (it made tracing the 14 branches 8x slower).
"""

import math

import tensorflow as tf

from tfssl.data.augment import apply_with_probability, rotate, split_seed, uniform

CUTOUT_FILL = 0.5  # FixMatch fills the Cutout square with mid-gray (127 of 255)


def _luma(image):
    """(H, W, 1) gray level (ITU-R 601: 0.299 R + 0.587 G + 0.114 B, as PIL's 'L')."""
    return image if image.shape[-1] == 1 else tf.image.rgb_to_grayscale(image)


def blend(degenerate, image, factor):
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 1.0)


def _levels(image):
    """The image as integer gray levels 0..255."""
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.int32)


# --- colour and histogram operations ---
def brightness(image, factor):
    return blend(tf.zeros_like(image), image, factor)


def color(image, factor):
    """Saturation: blend with the image's grayscale version (the identity for 1 channel)."""
    return blend(tf.ones_like(image) * _luma(image), image, factor)


def contrast(image, factor):
    """Blend with a flat image at the mean gray level."""
    return blend(tf.ones_like(image) * tf.reduce_mean(_luma(image)), image, factor)


def sharpness(image, factor):
    """Blend with a smoothed image (3x3 kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 inside,
    the border pixels kept), as PIL's ImageEnhance.Sharpness."""
    channels = image.shape[-1]
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, channels, 1])
    inner = tf.nn.depthwise_conv2d(image[tf.newaxis], kernel, [1, 1, 1, 1], "VALID")[0]
    border = tf.pad(tf.ones_like(inner), [[1, 1], [1, 1], [0, 0]]) < 0.5
    smooth = tf.where(border, image, tf.pad(inner, [[1, 1], [1, 1], [0, 0]]))
    return blend(smooth, image, factor)


def auto_contrast(image):
    """Each channel stretched linearly so its darkest pixel is 0 and its brightest 1 (a flat
    channel is left alone)."""
    low = tf.reduce_min(image, axis=[0, 1], keepdims=True)
    high = tf.reduce_max(image, axis=[0, 1], keepdims=True)
    stretched = (image - low) / tf.maximum(high - low, 1e-12)
    return tf.where(high > low, tf.clip_by_value(stretched, 0.0, 1.0), image)


def _equalize_channel(levels):
    """PIL's ImageOps.equalize on one channel of gray levels 0..255: with h the histogram,
    step = (sum(h) - h[last non-empty level]) // 255, and level i maps to
    (step // 2 + sum(h[:i])) // step; unchanged when step is 0."""
    histogram = tf.math.bincount(levels, minlength=256, maxlength=256)
    last = tf.gather(histogram, tf.reduce_max(levels))
    step = (tf.reduce_sum(histogram) - last) // 255
    lut = (step // 2 + tf.cumsum(histogram, exclusive=True)) // tf.maximum(step, 1)
    return tf.where(step > 0, tf.gather(tf.minimum(lut, 255), levels), levels)


def equalize(image):
    """Histogram equalisation of each channel on 256 gray levels."""
    levels = _levels(image)
    channels = [_equalize_channel(levels[..., c]) for c in range(image.shape[-1])]
    return tf.cast(tf.stack(channels, -1), tf.float32) / 255.0


def posterize(image, bits):
    """Keeps the `bits` high bits of each 8-bit level."""
    shift = 8 - tf.cast(bits, tf.int32)
    kept = tf.bitwise.left_shift(tf.bitwise.right_shift(_levels(image), shift), shift)
    return tf.cast(kept, tf.float32) / 255.0


def solarize(image, threshold):
    """Inverts the pixels at or above threshold."""
    return tf.where(image >= threshold, 1.0 - image, image)


# --- geometric operations ---
def affine(image, matrix):
    """Output pixel (x, y) reads the input at (a x + b y + c, d x + e y + f), matrix = (a, b, c,
    d, e, f), bilinearly; points outside the image read black."""
    height, width, _ = image.shape
    transform = tf.concat([tf.cast(tf.stack(matrix), tf.float32), tf.zeros([2])], 0)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform[tf.newaxis],
        output_shape=[height, width],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return warped[0]


def shear_x(image, shear):
    center = (image.shape[0] - 1) / 2
    return affine(image, [1.0, shear, -shear * center, 0.0, 1.0, 0.0])


def shear_y(image, shear):
    center = (image.shape[1] - 1) / 2
    return affine(image, [1.0, 0.0, 0.0, shear, 1.0, -shear * center])


def translate(image, dx, dy):
    """Moves the image right by dx and down by dy whole pixels, black coming in."""
    dx, dy = tf.cast(dx, tf.float32), tf.cast(dy, tf.float32)
    return affine(image, [1.0, 0.0, -dx, 0.0, 1.0, -dy])


def cutout(image, center_y, center_x, side, fill=CUTOUT_FILL):
    """Fills rows [cy - side // 2, cy - side // 2 + side) x the same columns (clipped to the
    image) with `fill`."""
    height, width, _ = image.shape
    top, left = center_y - side // 2, center_x - side // 2
    rows = tf.range(height)[:, tf.newaxis, tf.newaxis]
    cols = tf.range(width)[tf.newaxis, :, tf.newaxis]
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return tf.where(inside, tf.cast(fill, image.dtype), image)


def random_cutout(image, fraction, seed):
    """cutout() of a square with side round(fraction * min(H, W)) centred on a uniform pixel."""
    height, width, _ = image.shape
    side = int(round(fraction * min(height, width)))
    if side <= 0:
        return image
    center = tf.random.stateless_uniform([2], seed, 0, 2**31 - 1, dtype=tf.int32)
    return cutout(image, center[0] % height, center[1] % width, side)


# --- RandAugment ---
def _ops():
    """(name, fn(image, m)) for m in [-1, 1]: the 14 operations at signed magnitude m."""

    def factor(m):
        return 1.0 + 0.9 * m

    return (
        ("identity", lambda x, m: x),
        ("auto_contrast", lambda x, m: auto_contrast(x)),
        ("equalize", lambda x, m: equalize(x)),
        ("rotate", lambda x, m: rotate(x, m * (30.0 * math.pi / 180.0))),
        ("solarize", lambda x, m: solarize(x, 1.0 - tf.abs(m))),
        ("color", lambda x, m: color(x, factor(m))),
        ("contrast", lambda x, m: contrast(x, factor(m))),
        ("brightness", lambda x, m: brightness(x, factor(m))),
        ("sharpness", lambda x, m: sharpness(x, factor(m))),
        ("shear_x", lambda x, m: shear_x(x, 0.3 * m)),
        ("shear_y", lambda x, m: shear_y(x, 0.3 * m)),
        ("translate_x", lambda x, m: translate(x, tf.round(0.3 * m * x.shape[1]), 0.0)),
        ("translate_y", lambda x, m: translate(x, 0.0, tf.round(0.3 * m * x.shape[0]))),
        ("posterize", lambda x, m: posterize(x, 8 - tf.cast(tf.round(4 * tf.abs(m)), tf.int32))),
    )


OP_NAMES = tuple(name for name, _ in _ops())


@tf.autograph.experimental.do_not_convert
def apply_op(image, index, magnitude):
    """Operation number `index` of OP_NAMES at signed magnitude in [-1, 1]."""
    branches = [
        lambda fn=fn: tf.ensure_shape(fn(image, magnitude), image.shape) for _, fn in _ops()
    ]
    return tf.switch_case(tf.cast(index, tf.int32), branches)


@tf.autograph.experimental.do_not_convert
def randaugment(image, seed, num_ops=2, probability=0.5):
    """num_ops times: a uniformly chosen operation, at a uniform magnitude in [-1, 1], applied with
    the given probability."""
    for op_seed in split_seed(seed, num_ops) if num_ops else []:
        choice_seed, magnitude_seed, apply_seed = split_seed(op_seed, 3)
        index = tf.random.stateless_uniform([], choice_seed, 0, len(OP_NAMES), dtype=tf.int32)
        magnitude = uniform(magnitude_seed, -1.0, 1.0)
        image = apply_with_probability(
            lambda x, i=index, m=magnitude: apply_op(x, i, m), probability, image, apply_seed
        )
    return image


@tf.autograph.experimental.do_not_convert
def strong_view(image, seed, num_ops=2, cutout_fraction=0.5):
    """FixMatch's strong augmentation of an (already weakly augmented) image: randaugment() then
    Cutout of a square cutout_fraction of the side (FixMatch: half)."""
    augment_seed, cutout_seed = split_seed(seed, 2)
    image = randaugment(image, augment_seed, num_ops)
    if cutout_fraction:
        image = random_cutout(image, cutout_fraction, cutout_seed)
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), image.shape)
