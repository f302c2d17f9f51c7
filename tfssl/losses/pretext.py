"""Losses of the pretext tasks: masked reconstruction (context encoder, MAE), colorization's
rebalanced soft cross-entropy, and the context encoder's adversarial terms."""

import tensorflow as tf


def masked_l2(prediction, target, mask):
    """Mean squared error over the masked pixels only (Pathak et al.'s reconstruction loss):
        sum(mask * (prediction - target)^2) / (sum(mask) * C)
    for (B, H, W, C) images and a (B, H, W, 1) or (H, W, 1) mask of 0 and 1."""
    prediction, target = tf.cast(prediction, tf.float32), tf.cast(target, tf.float32)
    mask = tf.broadcast_to(tf.cast(mask, tf.float32), tf.shape(prediction[..., :1]))
    squared = tf.reduce_sum(tf.square(prediction - target) * mask)
    channels = tf.cast(tf.shape(prediction)[-1], tf.float32)
    return squared / tf.maximum(tf.reduce_sum(mask) * channels, 1.0)


def mae_loss(prediction, target_patches, mask, norm_pix_loss=True, epsilon=1e-6):
    """MAE's loss (He et al. 2022) on (B, N, D) patches and a (B, N) mask (1 = removed):
        t = (x - mean(x)) / sqrt(var(x) + eps) per patch if norm_pix_loss, else x
        loss = sum_n mask_n * mean_d (prediction_nd - t_nd)^2 / sum_n mask_n
    so only the removed patches count."""
    prediction = tf.cast(prediction, tf.float32)
    target = tf.cast(target_patches, tf.float32)
    if norm_pix_loss:
        mean, variance = tf.nn.moments(target, axes=[-1], keepdims=True)
        target = (target - mean) / tf.sqrt(variance + epsilon)
    per_patch = tf.reduce_mean(tf.square(prediction - target), -1)
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(per_patch * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def rebalanced_soft_cross_entropy(logits, indices, weights, pixel_weights=None):
    """Colorization's classification loss (Zhang et al. 2016, eq. 2) with sparse soft targets:
        L = -sum_pixels v_p sum_k z_pk log softmax(logits_p)[bin_pk] / pixels
    logits (..., Q); indices, weights (..., K): each pixel's target bins and their weights z;
    pixel_weights (...): the rebalancing weight v of each pixel (1 if None)."""
    log_probabilities = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    picked = tf.gather(log_probabilities, indices, batch_dims=len(indices.shape) - 1)
    per_pixel = -tf.reduce_sum(weights * picked, -1)
    if pixel_weights is not None:
        per_pixel *= pixel_weights
    return tf.reduce_mean(per_pixel)


def discriminator_loss(real_logits, fake_logits):
    """The GAN discriminator's cross-entropy: real images labelled 1, completed ones 0."""
    real = tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(real_logits), real_logits)
    fake = tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(fake_logits), fake_logits)
    return tf.reduce_mean(real) + tf.reduce_mean(fake)


def generator_loss(fake_logits):
    """The non-saturating adversarial loss of the generator: -log D(completed image)."""
    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake_logits), fake_logits)
    )
