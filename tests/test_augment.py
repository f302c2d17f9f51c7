"""SimCLR augmentations: same output eagerly and inside tf.data, probabilities, value ranges."""

import numpy as np
import pytest
import tensorflow as tf

from tfssl.data import augment


def rgb_image(size=32, seed=0):
    """A smooth synthetic colour image (no RGB benchmark dataset is available offline)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], -1) * 0.8 + 0.2 * rng.uniform(
        size=(size, size, 3)
    )
    return tf.constant(np.clip(image, 0, 1), tf.float32)


def gray_image(size=28):
    return tf.image.rgb_to_grayscale(rgb_image(size))


AUGMENTATIONS = {
    "crop": lambda im, s: augment.random_resized_crop(im, 24, s),
    "flip": lambda im, s: augment.random_flip(im, s),
    "jitter": lambda im, s: augment.color_jitter(im, 1.0, s),
    "color_distortion": lambda im, s: augment.random_color_distortion(im, 1.0, s),
    "blur": lambda im, s: augment.random_blur(im, 32, s),
    "simclr_view": lambda im, s: augment.simclr_view(im, 32, s, 1.0, True),
    "finetune_view": lambda im, s: augment.finetune_view(im, 32, s),
}


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
@pytest.mark.parametrize("make_image", [rgb_image, gray_image], ids=["rgb", "gray"])
def test_eager_equals_tf_data(name, make_image):
    fn = AUGMENTATIONS[name]
    image = make_image()
    seeds = [tf.constant([7, i], tf.int64) for i in range(6)]
    eager = [fn(image, s).numpy() for s in seeds]
    ds = tf.data.Dataset.from_tensor_slices(tf.stack(seeds)).map(
        lambda s: fn(image, s), num_parallel_calls=4
    )
    in_data = [x.numpy() for x in ds]
    for a, b in zip(eager, in_data):
        np.testing.assert_allclose(a, b, atol=1e-5)
        assert a.min() >= 0.0 and a.max() <= 1.0
        assert a.shape[-1] == image.shape[-1]
    assert len({a.tobytes() for a in eager}) > 1 or name == "flip"  # the seed matters


def is_grayscale(image):
    return np.allclose(image[..., 0], image[..., 1], atol=1e-5) and np.allclose(
        image[..., 1], image[..., 2], atol=1e-5
    )


def test_color_distortion_probabilities():
    """Jitter with p=0.8 (output differs from input), grayscale with p=0.2 (equal channels)."""
    image = rgb_image(16)
    n = 1500
    fn = tf.function(lambda s: augment.random_color_distortion(image, 1.0, s))
    outputs = [fn(tf.constant([3, i], tf.int64)).numpy() for i in range(n)]
    gray = np.mean([is_grayscale(o) for o in outputs])
    unchanged = np.mean([np.allclose(o, image.numpy(), atol=1e-6) for o in outputs])
    # untouched only when no jitter (0.2) and no grayscale (0.8): 0.16
    tolerance = 4 * np.sqrt(0.2 * 0.8 / n)
    assert abs(gray - 0.2) < tolerance
    assert abs(unchanged - 0.2 * 0.8) < tolerance


def test_blur_probability_and_flip_probability():
    image = rgb_image(32)
    n = 800
    blur = tf.function(lambda s: augment.random_blur(image, 32, s))
    blurred = np.mean(
        [
            not np.allclose(blur(tf.constant([5, i], tf.int64)).numpy(), image.numpy())
            for i in range(n)
        ]
    )
    flip = tf.function(lambda s: augment.random_flip(image, s))
    flipped = np.mean(
        [
            np.allclose(flip(tf.constant([6, i], tf.int64)).numpy(), image.numpy()[:, ::-1])
            for i in range(n)
        ]
    )
    tolerance = 4 * np.sqrt(0.25 / n)
    assert abs(blurred - 0.5) < tolerance
    assert abs(flipped - 0.5) < tolerance


def test_gaussian_kernel_matches_formula():
    sigma, size = 1.3, 7
    x = np.arange(-3, 4)
    expected = np.exp(-(x**2) / (2 * sigma**2))
    np.testing.assert_allclose(
        augment.gaussian_kernel(size, sigma).numpy(), expected / expected.sum(), rtol=1e-6
    )


def test_blur_of_constant_image_is_constant_inside():
    image = tf.fill([20, 20, 3], 0.5)
    out = augment.gaussian_blur(image, 5, 1.0).numpy()
    np.testing.assert_allclose(
        out[3:-3, 3:-3], 0.5, atol=1e-6
    )  # zero padding only touches the border


def test_random_resized_crop_area_and_aspect():
    """Crops keep 8%-100% of the area with aspect ratio in [3/4, 4/3]."""
    shape = tf.constant([100, 100, 3])
    areas, aspects = [], []
    for i in range(300):
        _, size = augment.sample_crop_box(shape, tf.constant([i, 1], tf.int64))
        h, w = int(size[0]), int(size[1])
        areas.append(h * w / 1e4)
        aspects.append(w / h)
    assert min(areas) >= 0.07 and max(areas) <= 1.0 and np.mean(areas) < 0.8
    assert min(aspects) >= 0.70 and max(aspects) <= 1.40
    crop = augment.random_resized_crop(rgb_image(40), 32, tf.constant([1, 2], tf.int64))
    assert crop.shape == (32, 32, 3)


def test_grayscale_input_gets_brightness_and_contrast_only():
    image = gray_image(16)
    out = augment.color_jitter(image, 1.0, tf.constant([1, 1], tf.int64))
    assert out.shape == image.shape
    assert augment.to_grayscale(image) is image


def test_eval_view_center_crops_only_above_32px():
    small = rgb_image(32)
    np.testing.assert_allclose(augment.eval_view(small, 32).numpy(), small.numpy())
    large = rgb_image(64)
    assert augment.eval_view(large, 48).shape == (48, 48, 3)
