"""The Ladder network's denoising function g and its per-layer denoising cost (Rasmus et al. 2015).

Notation of the paper (Algorithm 1): for layer l with m_l units, z(l) is the
clean encoder's batch-normalised pre-activation, mu(l) and sigma(l) the clean
batch mean and standard deviation used to normalise it, z~(l) the corrupted
encoder's (normalised, then noisy) pre-activation, u(l) the batch-normalised
top-down signal, and z^(l) = g(z~(l), u(l)) the decoder's estimate of z(l).
"""

import tensorflow as tf

#: Added to batch variances before the square root (the reference code's 1e-10).
BATCH_NORM_EPSILON = 1e-10


def gaussian_combinator(z_corrupted, u, a):
    """The vanilla combinator g (the paper's eq. 2), applied per unit i:

        mu_i(u) = a1_i * sigmoid(a2_i * u_i + a3_i) + a4_i * u_i + a5_i
        v_i(u)  = a6_i * sigmoid(a7_i * u_i + a8_i) + a9_i * u_i + a10_i
        z^_i    = (z~_i - mu_i(u)) * v_i(u) + mu_i(u)

    Under a Gaussian assumption on z, z^ is the posterior mean of z given its
    noisy version z~ (weighted by v) and the prior mean mu predicted from above.

    z_corrupted, u: tensors of the same shape (batch, ..., units).
    a: ten tensors a1..a10 of shape (units,) (or broadcastable to z).
    """
    a1, a2, a3, a4, a5, a6, a7, a8, a9, a10 = a
    mu = a1 * tf.sigmoid(a2 * u + a3) + a4 * u + a5
    v = a6 * tf.sigmoid(a7 * u + a8) + a9 * u + a10
    return (z_corrupted - mu) * v + mu


def normalize_estimate(
    z_estimate, clean_mean=None, clean_variance=None, epsilon=BATCH_NORM_EPSILON
):
    """z^_BN = (z^ - mu) / sqrt(sigma^2 + epsilon) with the clean encoder's batch statistics;
    z^ itself where there are none (the input layer is not normalised)."""
    if clean_mean is None:
        return z_estimate
    return (z_estimate - clean_mean) * tf.math.rsqrt(clean_variance + epsilon)


def denoising_cost(
    z_clean, z_estimate, clean_mean=None, clean_variance=None, epsilon=BATCH_NORM_EPSILON
):
    """The layer's denoising cost C_d(l), the mean squared error per unit and example:

        C_d(l) = 1 / (N * m_l) * sum_n || z(l)_n - z^_BN(l)_n ||^2

    with z^_BN = normalize_estimate(z^, mu, sigma^2): the decoder's estimate is
    normalised with the clean batch statistics before it is compared with the
    clean z. Every axis after the batch axis counts as units (m_l = H * W * C for
    a conv layer). Gradients flow into both z and z^, as in the reference code.
    """
    target = tf.cast(z_clean, tf.float32)
    estimate = normalize_estimate(
        tf.cast(z_estimate, tf.float32), clean_mean, clean_variance, epsilon
    )
    return tf.reduce_mean(tf.square(target - estimate))


def weighted_denoising_cost(costs, weights):
    """sum_l lambda_l * C_d(l) over the layers with a cost (costs and weights indexed by layer)."""
    return (
        tf.add_n([weights[layer] * cost for layer, cost in costs.items()])
        if costs
        else tf.constant(0.0)
    )
