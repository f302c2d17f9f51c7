"""The networks a pretext task trains beside the encoder and drops afterwards: classifier heads
(rotation, jigsaw), a convolutional decoder (context encoder, colorization) and a small
discriminator (the context encoder's adversarial term)."""

import math

import keras
import tensorflow as tf
from keras import layers

from tfssl.models.heads import LinearLayer
from tfssl.models.layers import BatchNormRelu, ConfigMixin


@keras.saving.register_keras_serializable("tfssl")
class ClassifierHead(ConfigMixin, layers.Layer):
    """An MLP on the encoder's pooled features: linear + BN + ReLU (as wide as its input), then a
    linear layer to the pretext classes (RotNet's 4 rotations)."""

    def __init__(self, num_classes, bn_momentum=0.9, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self._config = dict(
            num_classes=num_classes, bn_momentum=bn_momentum, synchronized=synchronized
        )
        bn = dict(bn_momentum=bn_momentum, synchronized=synchronized, dtype=self.dtype_policy)
        self.hidden = LinearLayer(0, use_bn=True, name="hidden", **bn)
        self.out = LinearLayer(num_classes, dtype=self.dtype_policy, name="logits")

    def call(self, features, training=None):
        return self.out(tf.nn.relu(self.hidden(features, training=training)))


@keras.saving.register_keras_serializable("tfssl")
class JigsawHead(ConfigMixin, layers.Layer):
    """Noroozi & Favaro's context-free network above the shared tile encoder: each tile's features
    through one shared linear + BN + ReLU layer (fc6), the tiles' outputs concatenated in puzzle
    order, a linear + BN + ReLU layer (fc7) and the permutation logits (fc8)."""

    def __init__(
        self,
        num_permutations,
        tile_units=256,
        units=512,
        bn_momentum=0.9,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            num_permutations=num_permutations,
            tile_units=tile_units,
            units=units,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
        )
        bn = dict(
            use_bn=True, bn_momentum=bn_momentum, synchronized=synchronized, dtype=self.dtype_policy
        )
        self.fc6 = LinearLayer(tile_units, name="fc6", **bn)
        self.fc7 = LinearLayer(units, name="fc7", **bn)
        self.fc8 = LinearLayer(num_permutations, dtype=self.dtype_policy, name="fc8")

    def call(self, tile_features, training=None):
        """tile_features (B, T, F) in puzzle order -> (B, num_permutations) logits."""
        tiles, width = tile_features.shape[1], tile_features.shape[2]
        x = tf.nn.relu(self.fc6(tf.reshape(tile_features, [-1, width]), training=training))
        x = tf.reshape(x, [-1, tiles * x.shape[-1]])
        return self.fc8(tf.nn.relu(self.fc7(x, training=training)))


@keras.saving.register_keras_serializable("tfssl")
class ConvDecoder(ConfigMixin, layers.Layer):
    """From the encoder's last feature map (B, feature_size, feature_size, channels) to (B, S, S,
    out_channels): a 1x1 conv and ReLU, then 2x bilinear upsampling + 3x3 conv + BN + ReLU until
    the map reaches S, halving the channels (at least 16) each time, a bilinear resize to exactly
    S, and a 3x3 conv to the outputs (no activation)."""

    def __init__(
        self,
        image_size,
        feature_size,
        channels,
        out_channels,
        bn_momentum=0.9,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            image_size=image_size,
            feature_size=feature_size,
            channels=channels,
            out_channels=out_channels,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
        )
        self.image_size = image_size
        dtype = self.dtype_policy
        self.entry = layers.Conv2D(channels, 1, dtype=dtype, name="entry")
        upsamplings = max(math.ceil(math.log2(image_size / feature_size)), 0)
        widths = [max(channels // 2 ** (i + 1), 16) for i in range(upsamplings)]
        self.convs = self._track(
            "up_conv",
            [layers.Conv2D(w, 3, padding="same", use_bias=False, dtype=dtype) for w in widths],
        )
        self.norms = self._track(
            "up_norm",
            [
                BatchNormRelu(momentum=bn_momentum, synchronized=synchronized, dtype=dtype)
                for _ in widths
            ],
        )
        self.out = layers.Conv2D(out_channels, 3, padding="same", dtype=dtype, name="out")

    def call(self, features, training=None):
        x = tf.nn.relu(self.entry(features))
        for conv, norm in zip(self.convs, self.norms):
            x = tf.image.resize(x, [2 * x.shape[1], 2 * x.shape[2]], "bilinear")
            x = norm(conv(tf.cast(x, self.compute_dtype)), training=training)
        if x.shape[1] != self.image_size:
            x = tf.image.resize(x, [self.image_size, self.image_size], "bilinear")
        return self.out(tf.cast(x, self.compute_dtype))


@keras.saving.register_keras_serializable("tfssl")
class Discriminator(ConfigMixin, layers.Layer):
    """A small DCGAN-style critic without batch norm: 4x4 convs of stride 2 with leaky ReLU (0.2),
    doubling from `width` channels, global average pooling and one logit per image."""

    def __init__(self, width=32, num_layers=3, **kwargs):
        super().__init__(**kwargs)
        self._config = dict(width=width, num_layers=num_layers)
        self.convs = self._track(
            "conv",
            [
                layers.Conv2D(width * 2**i, 4, 2, padding="same", dtype=self.dtype_policy)
                for i in range(num_layers)
            ],
        )
        self.out = layers.Dense(1, dtype=self.dtype_policy)

    def call(self, images):
        x = images
        for conv in self.convs:
            x = tf.nn.leaky_relu(conv(x), 0.2)
        return self.out(tf.reduce_mean(x, [1, 2]))[:, 0]
