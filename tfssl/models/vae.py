"""Networks of the semi-supervised VAE (Kingma et al. 2014): M1, M2 and M1+M2.

Every distribution is a fully connected network (MLP) over flattened inputs:
  M1   q(z|x) = N(mu(x), diag sigma^2(x)),  p(z) = N(0, I),  p(x|z)
  M2   q(y|x) = Cat(pi(x)),  q(z|x,y) = N(mu(x,y), diag sigma^2(x,y)),  p(y) = 1/K,
       p(z) = N(0, I),  p(x|y,z)
p(x|.) is Bernoulli (the decoder gives logits) or a diagonal Gaussian (mean and log variance).
M1+M2 runs M2 on M1's latent codes, with M1 frozen.
"""

import math

import keras
import tensorflow as tf
from keras import layers

from tfssl.losses import elbo
from tfssl.models.layers import ConfigMixin

# Smallest variance of a Gaussian decoder: image pixels that are always 0 would otherwise drive the
# variance, and the likelihood, to infinity. log_var = log(exp(raw) + MIN_VARIANCE).
MIN_VARIANCE = 1e-3
LIKELIHOODS = ("bernoulli", "gaussian")


def decoder_units(likelihood, data_dim):
    return data_dim if likelihood == "bernoulli" else 2 * data_dim


def gaussian_parameters(raw):
    """(mean, log_var) of a Gaussian decoder from its raw output [mean, raw log variance]."""
    mean, raw_log_var = tf.split(raw, 2, axis=-1)
    log_min = math.log(MIN_VARIANCE)
    return mean, log_min + tf.nn.softplus(raw_log_var - log_min)


def log_likelihood(likelihood, x, raw):
    """log p(x | decoder output raw), summed over dimensions."""
    if likelihood == "bernoulli":
        return elbo.bernoulli_log_likelihood(x, raw)
    mean, log_var = gaussian_parameters(raw)
    return elbo.gaussian_log_likelihood(x, mean, log_var)


def decoder_mean(likelihood, raw):
    """E[x] under the decoder: sigmoid(logits), or the Gaussian mean."""
    return tf.sigmoid(raw) if likelihood == "bernoulli" else gaussian_parameters(raw)[0]


@keras.saving.register_keras_serializable("tfssl")
class MLP(ConfigMixin, layers.Layer):
    """Dense layers with `activation` after each hidden one and none after the output.

    With condition_dim > 0 the first layer also reads a condition c (a one-hot class) through its
    own bias-free weights: h1 = act(W x + b + V c). The two products broadcast, so x of shape (B, D)
    and c of shape (K, 1, K) give (K, B, ...): every example under every class, W x computed once.
    """

    def __init__(
        self, hidden_sizes=(500,), output_units=1, activation="softplus", condition_dim=0, **kwargs
    ):
        super().__init__(**kwargs)
        hidden_sizes = [int(size) for size in hidden_sizes]
        self._config = dict(
            hidden_sizes=hidden_sizes,
            output_units=output_units,
            activation=activation,
            condition_dim=condition_dim,
        )
        self.activation = keras.activations.get(activation)
        sizes = hidden_sizes + [output_units]
        self.dense_layers = self._track(
            "dense",
            [
                layers.Dense(units, dtype=self.dtype_policy, name=f"dense{i}")
                for i, units in enumerate(sizes)
            ],
        )
        self.condition_dense = (
            layers.Dense(sizes[0], use_bias=False, dtype=self.dtype_policy, name="condition_dense")
            if condition_dim
            else None
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = (*shape[:-1], layer.units)
        if self.condition_dense is not None:
            self.condition_dense.build((None, self._config["condition_dim"]))

    def call(self, inputs, condition=None):
        x = self.dense_layers[0](inputs)
        if self.condition_dense is not None:
            x = x + self.condition_dense(condition)
        for layer in self.dense_layers[1:]:
            x = layer(self.activation(x))
        return x


def _split_gaussian(raw):
    mean, log_var = tf.split(tf.cast(raw, tf.float32), 2, axis=-1)
    return mean, log_var


@keras.saving.register_keras_serializable("tfssl")
class VAE(ConfigMixin, keras.Model):
    """M1, the variational auto-encoder. Inputs are images (B, *data_shape) or flat vectors (B, D).

    call(images) -> {"z_mean", "z_log_var"}: q(z|x), the features M1+M2 and the export use.
    """

    def __init__(
        self,
        data_shape,
        latent_dim=50,
        hidden_sizes=(500, 500),
        activation="softplus",
        likelihood="bernoulli",
        **kwargs,
    ):
        super().__init__(**kwargs)
        data_shape = [int(d) for d in data_shape]
        self._config = dict(
            data_shape=data_shape,
            latent_dim=latent_dim,
            hidden_sizes=[int(h) for h in hidden_sizes],
            activation=activation,
            likelihood=likelihood,
        )
        self.data_shape, self.latent_dim, self.likelihood = data_shape, latent_dim, likelihood
        self.data_dim = math.prod(data_shape)
        self.encoder = MLP(
            hidden_sizes, 2 * latent_dim, activation, dtype=self.dtype_policy, name="encoder"
        )
        self.decoder = MLP(
            hidden_sizes,
            decoder_units(likelihood, self.data_dim),
            activation,
            dtype=self.dtype_policy,
            name="decoder",
        )

    def build(self, input_shape):
        self.encoder.build((None, self.data_dim))
        self.decoder.build((None, self.latent_dim))

    def flatten(self, x):
        return tf.reshape(tf.cast(x, tf.float32), [-1, self.data_dim])

    def encode(self, x):
        """(mean, log_var) of q(z|x)."""
        return _split_gaussian(self.encoder(self.flatten(x)))

    def call(self, inputs, training=None):
        mean, log_var = self.encode(inputs)
        return {"z_mean": mean, "z_log_var": log_var}

    def bound(self, x, target, eps):
        """Per-example terms of log p(target) >= E_q(z|x)[log p(target|z)] - KL(q(z|x) || p(z)), one
        sample z = mean + sigma * eps. The encoder reads x; target is what is scored (x, or a
        binarisation of it)."""
        mean, log_var = self.encode(x)
        z = elbo.reparameterize(mean, log_var, eps)
        log_px = log_likelihood(
            self.likelihood, self.flatten(target), tf.cast(self.decoder(z), tf.float32)
        )
        kl = elbo.gaussian_kl_to_standard_normal(mean, log_var)
        return {"bound": elbo.vae_bound(log_px, kl), "log_px": log_px, "kl": kl}

    def decode_mean(self, z):
        """E[x | z], flat (B, D)."""
        return decoder_mean(self.likelihood, tf.cast(self.decoder(z), tf.float32))


@keras.saving.register_keras_serializable("tfssl")
class M2(ConfigMixin, keras.Model):
    """M2, the generative semi-supervised model, over flat inputs of size input_dim (images are
    flattened).

    Three MLPs: the classifier q(y|x), the encoder q(z|x,y) and the decoder p(x|y,z).
    call(x) -> {"logits": logits of q(y|x), "z_mean": mean of q(z|x, y) for the predicted y}.
    """

    def __init__(
        self,
        input_dim,
        num_classes,
        latent_dim=50,
        hidden_sizes=(500,),
        activation="softplus",
        likelihood="bernoulli",
        **kwargs,
    ):
        super().__init__(**kwargs)
        hidden_sizes = [int(h) for h in hidden_sizes]
        self._config = dict(
            input_dim=input_dim,
            num_classes=num_classes,
            latent_dim=latent_dim,
            hidden_sizes=hidden_sizes,
            activation=activation,
            likelihood=likelihood,
        )
        self.input_dim, self.num_classes, self.latent_dim, self.likelihood = (
            input_dim,
            num_classes,
            latent_dim,
            likelihood,
        )
        policy = self.dtype_policy
        self.classifier = MLP(
            hidden_sizes, num_classes, activation, dtype=policy, name="classifier"
        )
        self.encoder = MLP(
            hidden_sizes,
            2 * latent_dim,
            activation,
            condition_dim=num_classes,
            dtype=policy,
            name="encoder",
        )
        self.decoder = MLP(
            hidden_sizes,
            decoder_units(likelihood, input_dim),
            activation,
            condition_dim=num_classes,
            dtype=policy,
            name="decoder",
        )

    def build(self, input_shape):
        self.classifier.build((None, self.input_dim))
        self.encoder.build((None, self.input_dim))
        self.decoder.build((None, self.latent_dim))

    def flatten(self, x):
        return tf.reshape(tf.cast(x, tf.float32), [-1, self.input_dim])

    def classify(self, x):
        """Logits of q(y|x)."""
        return tf.cast(self.classifier(self.flatten(x)), tf.float32)

    def encode(self, x, y):
        """(mean, log_var) of q(z|x,y); y one-hot, broadcasting against x as in MLP."""
        return _split_gaussian(self.encoder(self.flatten(x), y))

    def class_bounds(self, x, target, y, eps):
        """-L(x, y) per example for one-hot y (B, K), or for every class when y is (K, 1, K) and eps
        (K, B, latent): then the terms have shape (K, B). One sample z = mean + sigma * eps."""
        mean, log_var = self.encode(x, y)
        z = elbo.reparameterize(mean, log_var, eps)
        raw = tf.cast(self.decoder(z, y), tf.float32)
        log_px = log_likelihood(self.likelihood, self.flatten(target), raw)
        kl = elbo.gaussian_kl_to_standard_normal(mean, log_var)
        return {
            "bound": elbo.labeled_bound(log_px, kl, self.num_classes),
            "log_px": log_px,
            "kl": kl,
        }

    def labeled_bound(self, x, target, labels, eps):
        """Per-example -L(x, y) terms for integer labels (B,) and eps (B, latent)."""
        return self.class_bounds(x, target, tf.one_hot(labels, self.num_classes), eps)

    def unlabeled_bound(self, x, target, eps):
        """Per-example -U(x) with y summed over all K classes; eps (K, B, latent), one sample per
        class. Returns {"bound", "logits", "class_bounds" (B, K)}."""
        every_class = tf.eye(self.num_classes)[:, None, :]
        class_bounds = tf.transpose(self.class_bounds(x, target, every_class, eps)["bound"])
        logits = self.classify(x)
        return {
            "bound": elbo.unlabeled_bound(logits, class_bounds),
            "logits": logits,
            "class_bounds": class_bounds,
        }

    def call(self, inputs, training=None):
        logits = self.classify(inputs)
        predicted = tf.one_hot(tf.argmax(logits, -1), self.num_classes)
        return {"logits": logits, "z_mean": self.encode(inputs, predicted)[0]}

    def decode_mean(self, y, z):
        """E[x | y, z], flat, for one-hot y."""
        return decoder_mean(self.likelihood, tf.cast(self.decoder(z, y), tf.float32))


@keras.saving.register_keras_serializable("tfssl")
class M1M2(ConfigMixin, keras.Model):
    """M1+M2: images -> M1's q(z1|x) -> M2 on the active units of z1 (`active_units`, indices into
    M1's latent vector; all by default). M1 is frozen (not trainable).

    call(images) -> {"logits": q(y|z1) at z1 = M1's mean, "z_mean": M2's q(z2|z1, predicted y) mean,
    "m1_z_mean", "m1_z_log_var" (all of M1's units)}.
    """

    def __init__(self, m1_config, m2_config, active_units=None, **kwargs):
        super().__init__(**kwargs)
        active_units = (
            list(range(m1_config["latent_dim"]))
            if active_units is None
            else [int(i) for i in active_units]
        )
        self._config = dict(
            m1_config=dict(m1_config), m2_config=dict(m2_config), active_units=active_units
        )
        self.active_units = active_units
        self.m1 = VAE(**m1_config, dtype=self.dtype_policy, name="m1")
        self.m1.trainable = False
        self.m2 = M2(
            **{**m2_config, "input_dim": len(active_units)}, dtype=self.dtype_policy, name="m2"
        )

    def build(self, input_shape):
        self.m1.build(input_shape)
        self.m2.build((None, len(self.active_units)))

    def codes(self, images):
        """(mean, log_var) of M1's q(z1|x) over the active units: M2's input."""
        mean, log_var = self.m1.encode(images)
        return tf.gather(mean, self.active_units, axis=-1), tf.gather(
            log_var, self.active_units, axis=-1
        )

    def full_code(self, codes):
        """An M1 latent vector from values of the active units (zeros elsewhere)."""
        return codes @ tf.one_hot(self.active_units, self.m1.latent_dim)

    def call(self, inputs, training=None):
        mean, log_var = self.m1.encode(inputs)
        outputs = self.m2(tf.gather(mean, self.active_units, axis=-1))
        return {**outputs, "m1_z_mean": mean, "m1_z_log_var": log_var}
