"""Ladder network (Rasmus et al. 2015): one encoder run clean and corrupted, and a top-down decoder.

Encoder layer l (LadderEncoderLayer), for the clean path (noise 0) and the
corrupted path (Gaussian noise after the normalisation, and on the input):

    z_pre = W h(l-1)                      dense, convolution or pooling, no bias
    z     = (z_pre - mu) / sqrt(sigma^2 + eps) + noise
    h(l)  = activation(gamma * (z + beta))

Batch normalisation uses the statistics of the batch it is given, so the clean
and corrupted paths (and, in the method, the labeled and unlabeled batches)
each have their own; the clean unlabeled path also keeps population averages,
which normalise at inference. There is no learned scale gamma on ReLU layers,
only a learned shift beta; the classifier layer has both; pooling layers have
neither (as in the reference code CuriousAI/ladder). The decoder goes top-down:

    u(L) = BN(softmax of the corrupted logits),  u(l) = BN(V(l+1) z^(l+1))
    z^(l) = g(z~(l), u(l))                (GaussianCombinator, tfssl/losses/ladder.py)

decoder='full' decodes every layer (the dense MLP ladder); decoder='top' only the
classifier layer (the Gamma-model, any encoder).
"""

import dataclasses
import math

import keras
import tensorflow as tf
from keras import layers

from tfssl.losses.ladder import BATCH_NORM_EPSILON, gaussian_combinator
from tfssl.models.layers import ConfigMixin

#: Initial values of the combinator parameters a1..a10 (the reference code's "gauss" decoder).
COMBINATOR_INIT = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
SHIFTED_ACTIVATIONS = ("relu", "leaky_relu", "logits")  # pooling layers ("linear") get no shift


def batch_moments(x, synchronized=False):
    """Mean and biased variance over every axis but the last; over all replicas when
    synchronized."""
    axes = list(range(len(x.shape) - 1))
    context = tf.distribute.get_replica_context()
    if not synchronized or context is None or context.num_replicas_in_sync == 1:
        return tf.nn.moments(x, axes)
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
    total, total_square, total_count = context.all_reduce(
        tf.distribute.ReduceOp.SUM,
        [tf.reduce_sum(x, axes), tf.reduce_sum(tf.square(x), axes), count],
    )
    mean = total / total_count
    return mean, tf.maximum(total_square / total_count - tf.square(mean), 0.0)


def normalize_batch(x, synchronized=False):
    """x normalised with its own batch statistics (the decoder's u)."""
    mean, variance = batch_moments(x, synchronized)
    return (x - mean) * tf.math.rsqrt(variance + BATCH_NORM_EPSILON)


@keras.saving.register_keras_serializable("tfssl")
class BatchNormalizer(ConfigMixin, layers.Layer):
    """(z - mean) / sqrt(variance + eps) per channel, with no learned scale or shift.

    Training: the batch's own mean and variance; with update_population, also
    moves the population averages (unbiased variance) toward them by
    (1 - momentum). Inference: the population averages.
    call returns (normalised z, mean, variance)."""

    def __init__(self, momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self._config = dict(momentum=momentum, synchronized=synchronized)
        self.momentum, self.synchronized = momentum, synchronized

    def build(self, input_shape):
        channels = (input_shape[-1],)
        statistic = dict(shape=channels, trainable=False, aggregation="mean", autocast=False)
        self.moving_mean = self.add_weight(name="moving_mean", initializer="zeros", **statistic)
        self.moving_variance = self.add_weight(
            name="moving_variance", initializer="ones", **statistic
        )

    def call(self, z, training=False, update_population=False):
        if training:
            mean, variance = batch_moments(z, self.synchronized)
            if update_population:
                count = tf.cast(tf.reduce_prod(tf.shape(z)[:-1]), z.dtype)
                unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
                self.moving_mean.assign(
                    self.momentum * self.moving_mean + (1 - self.momentum) * mean
                )
                self.moving_variance.assign(
                    self.momentum * self.moving_variance + (1 - self.momentum) * unbiased
                )
        else:
            mean, variance = (
                tf.convert_to_tensor(self.moving_mean),
                tf.convert_to_tensor(self.moving_variance),
            )
        return (z - mean) * tf.math.rsqrt(variance + BATCH_NORM_EPSILON), mean, variance


@keras.saving.register_keras_serializable("tfssl")
class LadderEncoderLayer(ConfigMixin, layers.Layer):
    """One encoder layer f(l) (module docstring). call(h, noise_std, training, update_population)
    returns (z, h, batch mean, batch variance); z is the lateral signal to the decoder.

    transform: 'dense', 'conv_valid', 'conv_full' (zero padding kernel_size - 1 on every side, so
    the output grows), 'maxpool' (2x2, stride 2) or 'meanpool' (global, to (batch, channels)).
    activation: 'relu', 'leaky_relu' (slope 0.1), 'linear', or 'logits' (the classifier: the
    output is gamma * (z + beta), softmax is applied by the caller)."""

    def __init__(
        self,
        transform="dense",
        units=0,
        kernel_size=1,
        activation="relu",
        bn_momentum=0.99,
        synchronized=False,
        matmul_dtype="float32",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            transform=transform,
            units=units,
            kernel_size=kernel_size,
            activation=activation,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
            matmul_dtype=matmul_dtype,
        )
        self.transform, self.kernel_size, self.activation = transform, kernel_size, activation
        if transform == "dense":
            # Reference init: N(0, 1) / sqrt(fan_in) for dense, U(+-sqrt(3 / fan_in)) for
            # convolutions.
            self.linear = layers.Dense(
                units,
                use_bias=False,
                dtype=matmul_dtype,
                name="linear",
                kernel_initializer=keras.initializers.VarianceScaling(
                    1.0, "fan_in", "untruncated_normal"
                ),
            )
        elif transform in ("conv_valid", "conv_full"):
            self.linear = layers.Conv2D(
                units,
                kernel_size,
                padding="valid",
                use_bias=False,
                dtype=matmul_dtype,
                name="linear",
                kernel_initializer=keras.initializers.VarianceScaling(1.0, "fan_in", "uniform"),
            )
        elif transform == "maxpool":
            self.linear = layers.MaxPooling2D(2, 2, padding="valid", dtype=self.dtype_policy)
        elif transform == "meanpool":
            self.linear = layers.GlobalAveragePooling2D(dtype=self.dtype_policy)
        else:
            raise ValueError(f"unknown ladder layer transform {transform!r}")
        self.normalizer = BatchNormalizer(
            bn_momentum, synchronized, dtype=self.dtype_policy, name="batch_norm"
        )

    def _transform(self, h):
        if self.transform == "dense" and len(h.shape) > 2:
            h = tf.reshape(h, [tf.shape(h)[0], -1])
        if self.transform == "conv_full":
            pad = self.kernel_size - 1
            h = tf.pad(h, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return tf.cast(self.linear(h), self.compute_dtype)

    def build(self, input_shape):
        if self.transform == "dense" and len(input_shape) > 2:
            input_shape = (input_shape[0], math.prod(input_shape[1:]))
        self.linear.build(input_shape)
        channels = self.linear.compute_output_shape(input_shape)[-1]
        self.shift = (
            self.add_weight(name="shift", shape=(channels,), initializer="zeros")
            if self.activation in SHIFTED_ACTIVATIONS
            else None
        )
        self.scale = (
            self.add_weight(name="scale", shape=(channels,), initializer="ones")
            if self.activation == "logits"
            else None
        )

    def call(self, h, noise_std=0.0, training=False, update_population=False):
        z, mean, variance = self.normalizer(
            self._transform(h), training=training, update_population=update_population
        )
        if noise_std:
            z = z + noise_std * tf.random.normal(tf.shape(z), dtype=z.dtype)
        out = z if self.shift is None else z + self.shift
        if self.scale is not None:
            out = self.scale * out
        if self.activation == "relu":
            out = tf.nn.relu(out)
        elif self.activation == "leaky_relu":
            out = tf.nn.leaky_relu(out, 0.1)
        return z, out, mean, variance


@keras.saving.register_keras_serializable("tfssl")
class GaussianCombinator(ConfigMixin, layers.Layer):
    """The decoder's vanilla combinator g(z~, u) with per-unit parameters a1..a10
    (initialised to COMBINATOR_INIT: a2 = a7 = 1, the rest 0)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._config = {}

    def build(self, input_shape):
        self.a = [
            self.add_weight(
                name=f"a{i + 1}",
                shape=(input_shape[-1],),
                initializer=keras.initializers.Constant(value),
            )
            for i, value in enumerate(COMBINATOR_INIT)
        ]

    def call(self, z_corrupted, u):
        return gaussian_combinator(z_corrupted, u, [tf.convert_to_tensor(a) for a in self.a])


@dataclasses.dataclass
class EncoderPass:
    """One encoder pass. Lists are indexed by layer 0..L (0: the input, which has no statistics)."""

    z: list
    mean: list
    variance: list
    logits: tf.Tensor
    features: tf.Tensor  # h(L-1), the classifier's input


@keras.saving.register_keras_serializable("tfssl")
class LadderNetwork(ConfigMixin, keras.Model):
    """Encoder layers 1..L from layer_specs (LadderEncoderLayer arguments; the last is the
    classifier, activation 'logits') and a decoder ('full': every layer, dense layers only; 'top':
    the Gamma-model).

    call(images, training) is the clean path, {'logits', 'features'}: what is evaluated and
    exported. encode() and decode() are the two paths the Ladder method trains."""

    def __init__(
        self,
        layer_specs,
        decoder="full",
        bn_momentum=0.99,
        synchronized=False,
        matmul_dtype="float32",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            layer_specs=[dict(spec) for spec in layer_specs],
            decoder=decoder,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
            matmul_dtype=matmul_dtype,
        )
        if decoder not in ("full", "top"):
            raise ValueError(f"decoder must be 'full' or 'top', not {decoder!r}")
        if decoder == "full" and any(
            spec.get("transform", "dense") != "dense" for spec in layer_specs
        ):
            raise ValueError(
                "the full ladder decoder needs dense encoder layers; "
                "use decoder='top' (Gamma-model)"
            )
        self.num_layers = len(layer_specs)  # L
        self.decoded_layers = (
            list(range(self.num_layers + 1)) if decoder == "full" else [self.num_layers]
        )
        self.synchronized = synchronized
        self.encoder_layers = self._track(
            "encoder",
            [
                LadderEncoderLayer(
                    **spec,
                    bn_momentum=bn_momentum,
                    synchronized=synchronized,
                    matmul_dtype=matmul_dtype,
                    dtype=self.dtype_policy,
                    name=f"encoder_{i + 1}",
                )
                for i, spec in enumerate(layer_specs)
            ],
        )
        self.combinators = self._track(
            "combinator",
            [
                GaussianCombinator(dtype=self.dtype_policy, name=f"g_{i}")
                for i in self.decoded_layers
            ],
        )
        self.vertical_maps = None  # V(l+1) for l < L, made in build() when the input size is known

    def build(self, input_shape):
        if len(self.decoded_layers) > 1:
            sizes = [math.prod(input_shape[1:])] + [
                spec["units"] for spec in self._config["layer_specs"]
            ]
            self.vertical_maps = self._track(
                "vertical",
                [
                    layers.Dense(
                        sizes[i],
                        use_bias=False,
                        dtype=self._config["matmul_dtype"],
                        name=f"decoder_{i}",
                        kernel_initializer=keras.initializers.VarianceScaling(
                            1.0, "fan_in", "untruncated_normal"
                        ),
                    )
                    for i in range(self.num_layers)
                ],
            )
        zeros = tf.zeros([2, *input_shape[1:]], self.compute_dtype)  # creates every variable
        self.decode(self.encode(zeros, training=True))
        self.encode(zeros, training=False)

    def encode(self, images, noise_std=0.0, training=False, update_population=False):
        """The encoder, clean (noise_std 0) or corrupted; returns an EncoderPass."""
        h = tf.cast(images, self.compute_dtype)
        if self.encoder_layers[0].transform == "dense":
            h = tf.reshape(h, [tf.shape(h)[0], -1])
        if noise_std:
            h = h + noise_std * tf.random.normal(tf.shape(h), dtype=h.dtype)
        result = EncoderPass(z=[h], mean=[None], variance=[None], logits=None, features=None)
        for layer in self.encoder_layers:
            result.features = h
            z, h, mean, variance = layer(
                h, noise_std=noise_std, training=training, update_population=update_population
            )
            result.z.append(z)
            result.mean.append(mean)
            result.variance.append(variance)
        result.logits = h
        return result

    def decode(self, corrupted, lowest_layer=0):
        """{layer: z^(layer)} for the decoded layers from the top down to lowest_layer."""
        top = self.num_layers
        u = tf.nn.softmax(corrupted.logits)
        estimates = {}
        for layer, combinator in reversed(list(zip(self.decoded_layers, self.combinators))):
            if layer < lowest_layer:
                break
            if layer < top:
                u = tf.cast(self.vertical_maps[layer](estimates[layer + 1]), self.compute_dtype)
            estimates[layer] = combinator(corrupted.z[layer], normalize_batch(u, self.synchronized))
        return estimates

    def call(self, images, training=False):
        clean = self.encode(images, training=training)
        return {
            "logits": clean.logits,
            "features": tf.reshape(clean.features, [tf.shape(clean.features)[0], -1]),
        }


def mlp_layer_specs(hidden_sizes, num_classes):
    """The paper's MLP, e.g. 784-1000-500-250-250-250-10: ReLU hidden layers and the classifier."""
    return [dict(transform="dense", units=int(n), activation="relu") for n in hidden_sizes] + [
        dict(transform="dense", units=num_classes, activation="logits")
    ]


def conv_small_layer_specs(num_classes):
    """The paper's Conv-Small for MNIST (the Gamma-model's encoder): 32 5x5 'full' convs, 2x2
    max-pool, 64 3x3 valid, 64 3x3 full, 2x2 max-pool, 128 3x3 valid, 10 1x1, global mean-pool,
    dense classifier."""

    def conv(transform, units, kernel):
        return dict(transform=transform, units=units, kernel_size=kernel)

    def pool(transform):
        return dict(transform=transform, activation="linear")

    return [
        conv("conv_full", 32, 5),
        pool("maxpool"),
        conv("conv_valid", 64, 3),
        conv("conv_full", 64, 3),
        pool("maxpool"),
        conv("conv_valid", 128, 3),
        conv("conv_valid", 10, 1),
        pool("meanpool"),
        dict(transform="dense", units=num_classes, activation="logits"),
    ]
