"""SimCLR augmentations as pure, seeded TensorFlow functions.

Every function takes a float image in [0, 1] of shape (H, W, C), C = 1 or 3,
and a stateless seed (a shape-[2] integer tensor). The same seed gives the same
output eagerly, inside tf.function and inside tf.data, on any number of
parallel calls. Semantics follow the official SimCLR code (data_util.py):
random resized crop (area 0.08-1, aspect 3/4-4/3, bicubic), horizontal flip,
colour jitter in random order applied with p=0.8 (SimCLRv2's multiplicative
brightness), grayscale with p=0.2, Gaussian blur with p=0.5 (kernel image_size/10,
sigma 0.1-2). Grayscale images get brightness and contrast only: saturation,
hue and grayscale have no meaning for them.
"""

import math

import tensorflow as tf

CROP_PROPORTION = 0.875  # central crop kept at eval, for images above 32 px


def split_seed(seed, num):
    """`num` independent stateless seeds derived from `seed`."""
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num))


def uniform(seed, low=0.0, high=1.0):
    return tf.random.stateless_uniform([], seed, minval=low, maxval=high)


def apply_with_probability(fn, p, image, seed):
    """fn(image) with probability p, else image."""
    return tf.cond(uniform(seed) < p, lambda: fn(image), lambda: image)


def resize(image, size):
    image = tf.image.resize(image, [size, size], method="bicubic")
    return tf.clip_by_value(image, 0.0, 1.0)


def sample_crop_box(image_shape, seed, area_range=(0.08, 1.0), aspect_range=(3 / 4, 4 / 3)):
    """(begin, size) of a random box with area fraction and aspect ratio (w / h) in range."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.1,
        aspect_ratio_range=aspect_range,
        area_range=area_range,
        max_attempts=100,
        use_image_if_no_bounding_boxes=True,
    )
    return begin, size


def random_resized_crop(image, size, seed, area_range=(0.08, 1.0), aspect_range=(3 / 4, 4 / 3)):
    """Crop a random box (area and aspect ratio in range) and resize it to size x size (bicubic)."""
    begin, crop_size = sample_crop_box(tf.shape(image), seed, area_range, aspect_range)
    channels = image.shape[-1]
    image = tf.slice(image, begin, crop_size)
    image.set_shape([None, None, channels])
    return resize(image, size)


def random_flip(image, seed):
    return tf.image.stateless_random_flip_left_right(image, seed)


def random_translation(image, max_pixels, seed, fill="reflect"):
    """Shifts an (H, W, C) image by (dy, dx), each uniform in [-max_pixels, max_pixels]. The border
    is filled by reflection, as in the reference code, or with zeros (fill="zero"): reflection
    mirrors the strokes of a digit near the edge into the image."""
    height, width, channels = image.shape
    mode = {"reflect": "REFLECT", "zero": "CONSTANT"}[fill]
    padded = tf.pad(image, [[max_pixels, max_pixels], [max_pixels, max_pixels], [0, 0]], mode=mode)
    corner = tf.random.stateless_uniform([2], seed, 0, 2 * max_pixels + 1, dtype=tf.int32)
    return tf.slice(padded, [corner[0], corner[1], 0], [height, width, channels])


def rotate(image, radians):
    """Rotates an (H, W, C) image counterclockwise about its centre (bilinear, zeros outside)."""
    height, width, _ = image.shape
    cos, sin = tf.cos(radians), tf.sin(radians)
    center_x, center_y = (width - 1) / 2, (height - 1) / 2
    # Each output pixel (x, y) reads the input at the inverse rotation of its offset from the
    # centre.
    transform = tf.stack(
        [
            cos,
            -sin,
            center_x - cos * center_x + sin * center_y,
            sin,
            cos,
            center_y - sin * center_x - cos * center_y,
            0.0,
            0.0,
        ]
    )
    rotated = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=tf.cast(transform, tf.float32)[tf.newaxis],
        output_shape=[height, width],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return rotated[0]


def random_rotation(image, max_degrees, seed):
    """rotate() by an angle uniform in [-max_degrees, max_degrees]."""
    degrees = uniform(seed, -max_degrees, max_degrees)
    return rotate(image, degrees * (math.pi / 180))


def warp(image, displacement):
    """Output pixel (y, x) reads the (H, W, C) image at (y + dy, x + dx),
    displacement (H, W, 2) = (dy, dx), bilinearly; points beyond the border read the nearest
    border pixel."""
    height, width, _ = image.shape
    rows, cols = tf.meshgrid(
        tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"
    )
    y = tf.clip_by_value(rows + displacement[..., 0], 0.0, height - 1.0)
    x = tf.clip_by_value(cols + displacement[..., 1], 0.0, width - 1.0)
    y0, x0 = tf.floor(y), tf.floor(x)
    wy, wx = (y - y0)[..., tf.newaxis], (x - x0)[..., tf.newaxis]
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    y1, x1 = tf.minimum(y0 + 1, height - 1), tf.minimum(x0 + 1, width - 1)

    def at(yy, xx):
        return tf.gather_nd(image, tf.stack([yy, xx], axis=-1))

    top = (1 - wx) * at(y0, x0) + wx * at(y0, x1)
    bottom = (1 - wx) * at(y1, x0) + wx * at(y1, x1)
    return (1 - wy) * top + wy * bottom


def random_elastic(image, alpha, sigma, seed):
    """Elastic distortion (Simard et al. 2003): per-pixel displacements uniform in [-1, 1], smoothed
    by a Gaussian of std `sigma` pixels, scaled by `alpha`, then warp()."""
    height, width, _ = image.shape
    field = tf.random.stateless_uniform([height, width, 2], seed, -1.0, 1.0)
    smooth = gaussian_blur(field, 2 * int(math.ceil(3 * sigma)) + 1, sigma)
    return warp(image, alpha * smooth)


def to_grayscale(image):
    """Luma, kept at the image's channel count."""
    if image.shape[-1] == 1:
        return image
    return tf.tile(tf.image.rgb_to_grayscale(image), [1, 1, 3])


def color_jitter(image, strength, seed):
    """Brightness, contrast, saturation (0.8 s) and hue (0.2 s) in a random order."""
    b, c, s, h = 0.8 * strength, 0.8 * strength, 0.8 * strength, 0.2 * strength
    order_seed, *op_seeds = split_seed(seed, 5)
    is_rgb = image.shape[-1] == 3

    def brightness(x):  # SimCLRv2: multiplicative
        return x * uniform(op_seeds[0], max(1.0 - b, 0.0), 1.0 + b)

    def contrast(x):
        return tf.image.stateless_random_contrast(x, 1.0 - c, 1.0 + c, op_seeds[1])

    def saturation(x):
        return (
            tf.image.stateless_random_saturation(x, 1.0 - s, 1.0 + s, op_seeds[2]) if is_rgb else x
        )

    def hue(x):
        return tf.image.stateless_random_hue(x, min(h, 0.5), op_seeds[3]) if is_rgb else x

    order = tf.argsort(tf.random.stateless_uniform([4], order_seed))
    for i in range(4):
        image = tf.switch_case(
            order[i],
            [
                lambda: brightness(image),
                lambda: contrast(image),
                lambda: saturation(image),
                lambda: hue(image),
            ],
        )
        image = tf.clip_by_value(image, 0.0, 1.0)
    return image


def random_color_distortion(image, strength, seed):
    """Colour jitter with p=0.8, then grayscale with p=0.2."""
    jitter_seed, jitter_apply_seed, gray_seed = split_seed(seed, 3)
    image = apply_with_probability(
        lambda x: color_jitter(x, strength, jitter_seed), 0.8, image, jitter_apply_seed
    )
    return apply_with_probability(to_grayscale, 0.2, image, gray_seed)


def gaussian_kernel(kernel_size, sigma):
    """1-D normalised Gaussian of 2 * (kernel_size // 2) + 1 taps."""
    radius = kernel_size // 2
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    weights = tf.exp(-tf.square(x) / (2.0 * tf.square(tf.cast(sigma, tf.float32))))
    return weights / tf.reduce_sum(weights)


def gaussian_blur(image, kernel_size, sigma):
    """Separable Gaussian blur with zero padding ('SAME'), as in the official code."""
    weights = gaussian_kernel(kernel_size, sigma)
    taps = weights.shape[0]
    channels = image.shape[-1]
    vertical = tf.tile(tf.reshape(weights, [taps, 1, 1, 1]), [1, 1, channels, 1])
    horizontal = tf.tile(tf.reshape(weights, [1, taps, 1, 1]), [1, 1, channels, 1])
    x = image[tf.newaxis]
    x = tf.nn.depthwise_conv2d(x, horizontal, [1, 1, 1, 1], "SAME")
    x = tf.nn.depthwise_conv2d(x, vertical, [1, 1, 1, 1], "SAME")
    return x[0]


def random_blur(image, image_size, seed, p=0.5):
    """Gaussian blur with probability p, sigma uniform in [0.1, 2], kernel image_size // 10."""
    sigma_seed, apply_seed = split_seed(seed, 2)
    kernel_size = max(image_size // 10, 1)

    def blur(x):
        return tf.clip_by_value(
            gaussian_blur(x, kernel_size, uniform(sigma_seed, 0.1, 2.0)), 0.0, 1.0
        )

    return apply_with_probability(blur, p, image, apply_seed)


def simclr_view(
    image, size, seed, color_jitter_strength=1.0, use_blur=True, crop_min_area=0.08, flip=True
):
    """One pretraining view: crop, flip, colour distortion, blur."""
    crop_seed, flip_seed, color_seed, blur_seed = split_seed(seed, 4)
    image = random_resized_crop(image, size, crop_seed, area_range=(crop_min_area, 1.0))
    if flip:
        image = random_flip(image, flip_seed)
    if color_jitter_strength > 0:
        image = random_color_distortion(image, color_jitter_strength, color_seed)
    if use_blur:
        image = random_blur(image, size, blur_seed)
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), [size, size, image.shape[-1]])


def finetune_view(image, size, seed, crop_min_area=0.08, flip=True):
    """Fine-tuning and supervised training: crop and flip, no colour."""
    crop_seed, flip_seed = split_seed(seed, 2)
    image = random_resized_crop(image, size, crop_seed, area_range=(crop_min_area, 1.0))
    if flip:
        image = random_flip(image, flip_seed)
    return tf.ensure_shape(image, [size, size, image.shape[-1]])


def center_crop(image, size, crop_proportion=CROP_PROPORTION):
    """Central crop keeping crop_proportion of the shorter side, resized to size x size.

    Works on one image (H, W, C) or a batch (B, H, W, C)."""
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    side = tf.cast(
        tf.math.rint(crop_proportion * tf.cast(tf.minimum(height, width), tf.float32)), tf.int32
    )
    top = (height - side + 1) // 2
    left = (width - side + 1) // 2
    return resize(image[..., top : top + side, left : left + side, :], size)


def eval_view(image, size):
    """Evaluation: central crop above 32 px, else a plain resize (none at native size).

    Works on one image (H, W, C) or a batch (B, H, W, C); the SavedModel uses the same code."""
    if size > 32:
        image = center_crop(image, size)
    elif image.shape[-3] is None or image.shape[-2] is None:
        native = tf.reduce_all(tf.equal(tf.shape(image)[-3:-1], size))
        image = tf.cond(native, lambda: image, lambda: resize(image, size))
    elif image.shape[-3] != size or image.shape[-2] != size:
        image = resize(image, size)
    return tf.ensure_shape(image, [*image.shape[:-3], size, size, image.shape[-1]])
