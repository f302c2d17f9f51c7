"""CIE Lab colour for colorization (Zhang et al. 2016): sRGB <-> Lab (D65), the quantised ab
gamut, soft-encoded targets, class-rebalancing weights and the annealed-mean decoding.

sRGB in [0, 1] -> linear RGB (inverse sRGB companding) -> XYZ (sRGB's D65 matrix) -> Lab:
    L = 116 f(Y / Yn) - 16,  a = 500 (f(X / Xn) - f(Y / Yn)),  b = 200 (f(Y / Yn) - f(Z / Zn)),
    f(t) = t^(1/3) if t > (6/29)^3 else t / (3 (6/29)^2) + 4/29.
"""

import functools

import numpy as np
import tensorflow as tf

WHITE_D65 = (0.95047, 1.0, 1.08883)
RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
DELTA = 6 / 29
GRID = 10.0  # ab bin width, as in the paper (313 in-gamut bins there)
SOFT_NEIGHBOURS = 5
SOFT_SIGMA = 5.0
ANNEALED_TEMPERATURE = 0.38


def rgb_to_lab(rgb):
    """(..., 3) sRGB in [0, 1] -> (..., 3) Lab, L in [0, 100]."""
    rgb = tf.cast(rgb, tf.float32)
    linear = tf.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = tf.linalg.matvec(tf.constant(RGB_TO_XYZ), linear[..., None, :])[..., 0, :]
    t = xyz / tf.constant(WHITE_D65)
    f = tf.where(t > DELTA**3, tf.pow(tf.maximum(t, DELTA**3), 1 / 3), t / (3 * DELTA**2) + 4 / 29)
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], -1)


def lab_to_rgb(lab):
    """(..., 3) Lab -> (..., 3) sRGB, clipped to [0, 1] (colours outside the gamut)."""
    lab = tf.cast(lab, tf.float32)
    big_l, a, b = tf.unstack(lab, axis=-1)
    fy = (big_l + 16) / 116
    f = tf.stack([fy + a / 500, fy, fy - b / 200], -1)
    t = tf.where(f > DELTA, f**3, 3 * DELTA**2 * (f - 4 / 29))
    xyz = t * tf.constant(WHITE_D65)
    linear = tf.linalg.matvec(tf.constant(np.linalg.inv(RGB_TO_XYZ), tf.float32), xyz[..., None, :])
    linear = tf.clip_by_value(linear[..., 0, :], 0.0, 1.0)
    rgb = tf.where(linear <= 0.0031308, 12.92 * linear, 1.055 * tf.pow(linear, 1 / 2.4) - 0.055)
    return tf.clip_by_value(rgb, 0.0, 1.0)


def luminance_input(lab, channels=3):
    """The network's input: L / 100 in [0, 1], repeated over `channels` (a gray image, so the
    encoder that fine-tuning restores takes the dataset's colour images)."""
    return tf.repeat(lab[..., :1] / 100.0, channels, axis=-1)


@functools.lru_cache(maxsize=None)
def ab_bins(grid=GRID, levels=48):
    """(Q, 2) centres of the ab bins (multiples of `grid`) that sRGB colours reach: every colour
    of a levels^3 lattice of the RGB cube, converted to Lab and rounded to the nearest centre."""
    axis = np.linspace(0.0, 1.0, levels, dtype=np.float32)
    cube = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    ab = rgb_to_lab(cube).numpy()[:, 1:]
    centres = np.unique(np.round(ab / grid).astype(np.int64), axis=0)
    return (centres * grid).astype(np.float32)


def nearest_bin(ab, bins):
    """(...,) index of the ab bin nearest each (..., 2) ab value."""
    distance = tf.reduce_sum(tf.square(ab[..., None, :] - bins), -1)
    return tf.argmin(distance, axis=-1, output_type=tf.int32)


def soft_encode(ab, bins, neighbours=SOFT_NEIGHBOURS, sigma=SOFT_SIGMA):
    """The paper's soft targets, sparse: (indices, weights), each (..., neighbours): the bins
    nearest each (..., 2) ab value, nearest first, with Gaussian weights (std `sigma`) normalised
    to sum to 1. (Every other bin's target is 0.)"""
    distance = tf.reduce_sum(tf.square(ab[..., None, :] - tf.constant(bins)), -1)
    nearest = tf.math.top_k(-distance, neighbours)
    return nearest.indices, tf.nn.softmax(nearest.values / (2 * sigma**2), axis=-1)


def dense_targets(indices, weights, num_bins):
    """(..., Q) targets from soft_encode's sparse ones."""
    return tf.reduce_sum(tf.one_hot(indices, num_bins) * weights[..., None], -2)


def rebalancing_weights(prior, bins, mix=0.5, sigma=SOFT_SIGMA):
    """Zhang et al.'s class-rebalancing weights (Q,) from the empirical bin distribution `prior`:
    p~ = the prior smoothed by a Gaussian of std `sigma` over ab, w ∝ 1 / ((1 - mix) p~ + mix / Q),
    scaled so that sum(p~ w) = 1 (the expected weight of a pixel stays 1)."""
    prior = np.asarray(prior, np.float64) / np.sum(prior)
    bins = np.asarray(bins, np.float64)
    kernel = np.exp(-np.sum((bins[:, None] - bins[None]) ** 2, -1) / (2 * sigma**2))
    smoothed = kernel @ prior
    smoothed /= smoothed.sum()
    weights = 1.0 / ((1 - mix) * smoothed + mix / len(bins))
    return (weights / np.sum(smoothed * weights)).astype(np.float32)


def annealed_mean(logits, bins, temperature=ANNEALED_TEMPERATURE):
    """(..., 2) ab from (..., Q) bin logits: the mean of softmax(logits / T) over the bin centres
    (T -> 0: the mode; T = 1: the mean; the paper uses 0.38)."""
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32) / temperature, axis=-1)
    return tf.linalg.matmul(probabilities, tf.constant(bins))
