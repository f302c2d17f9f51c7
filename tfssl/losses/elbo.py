"""Variational bounds of the semi-supervised VAE (Kingma, Rezende, Mohamed & Welling 2014).

Notation follows the paper: -L(x, y) is the evidence lower bound of a labeled
pair and -U(x) the bound of an unlabeled image, both in nats, per example (to
be maximised; L and U are the losses). Every function here is pure: it takes
distribution parameters and returns per-example values, summed over the last
(feature) axis.
"""

import math

import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


def reparameterize(mean, log_var, eps):
    """A sample of N(mean, diag exp(log_var)) from standard normal noise eps:
    z = mean + exp(log_var / 2) * eps."""
    return mean + tf.exp(0.5 * log_var) * eps


def gaussian_kl_to_standard_normal(mean, log_var):
    """KL(N(mean, diag exp(log_var)) || N(0, I))
    = 1/2 sum_j (mean_j^2 + exp(log_var_j) - 1 - log_var_j)."""
    return 0.5 * tf.reduce_sum(tf.square(mean) + tf.exp(log_var) - 1.0 - log_var, axis=-1)


def bernoulli_log_likelihood(x, logits):
    """log Bernoulli(x | sigmoid(logits)) = sum_d x_d log p_d + (1 - x_d) log(1 - p_d),
    p = sigmoid(logits).

    x may be grey levels in [0, 1] (then it is the negative binary cross-entropy). Computed as
    x * logits - softplus(logits), which is stable and broadcasts x against logits."""
    return tf.reduce_sum(x * logits - tf.nn.softplus(logits), axis=-1)


def gaussian_log_likelihood(x, mean, log_var):
    """log N(x | mean, diag exp(log_var))
    = -1/2 sum_d (log 2 pi + log_var_d + (x_d - mean_d)^2 / exp(log_var_d))."""
    return -0.5 * tf.reduce_sum(LOG_2PI + log_var + tf.square(x - mean) * tf.exp(-log_var), axis=-1)


def vae_bound(log_px_given_z, kl_z):
    """M1's bound: log p(x) >= E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)), with one sample of z."""
    return log_px_given_z - kl_z


def kl_warmup_weight(step, warmup_steps):
    """The KL weight of a warmed-up VAE bound, log p(x|z) - w * KL:
    w = min(1, step / warmup_steps), 1 without warm-up. Starting near an autoencoder keeps more
    latent units active (Sonderby et al. 2016)."""
    if not warmup_steps:
        return tf.constant(1.0)
    return tf.minimum(1.0, tf.cast(step, tf.float32) / float(warmup_steps))


def labeled_bound(log_px_given_yz, kl_z, num_classes):
    """-L(x, y) = E_q(z|x,y)[log p(x|y,z)] + log p(y) - KL(q(z|x,y) || p(z)), with
    p(y) uniform = 1/K and one sample of z (paper eq. 6; the KL is analytic)."""
    return log_px_given_yz - math.log(num_classes) - kl_z


def unlabeled_bound(class_logits, labeled_bounds):
    """-U(x) = sum_y q(y|x) (-L(x, y)) + H(q(y|x)) (paper eq. 7): y is marginalised exactly.

    class_logits: (B, K) logits of q(y|x); labeled_bounds: (B, K), -L(x, y) for every class y.
    H(q) = -sum_y q(y|x) log q(y|x). Gradients reach q(y|x) through both terms."""
    log_q = tf.nn.log_softmax(class_logits, axis=-1)
    q = tf.exp(log_q)
    return tf.reduce_sum(q * (labeled_bounds - log_q), axis=-1)


def semi_supervised_loss(
    labeled_bounds, unlabeled_bounds, class_nll, num_labeled, num_unlabeled, alpha
):
    """The per-example M2 objective J^alpha / N to minimise (paper eq. 9), for one step's two
    batches:

        J^alpha = sum_labeled L(x, y) + sum_unlabeled U(x) + (alpha * N) * mean_labeled[-log q(y|x)]
        loss    = J^alpha / N
                = (N_l / N) mean_l[-(-L)] + (N_u / N) mean_u[-(-U)] + alpha * mean_l[-log q(y|x)]

    with N = N_l + N_u, the sizes of the labeled and unlabeled sets, and the batch means unbiased
    estimates of the set means. alpha = 0.1 is the paper's alpha = 0.1 N. Returns the scalar loss.
    """
    total = float(num_labeled + num_unlabeled)
    return (
        -(num_labeled / total) * tf.reduce_mean(labeled_bounds)
        - (num_unlabeled / total) * tf.reduce_mean(unlabeled_bounds)
        + alpha * tf.reduce_mean(class_nll)
    )
