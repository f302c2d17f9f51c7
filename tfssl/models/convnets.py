"""ConvLarge: the 13-layer convnet of the Pi-model, Temporal Ensembling and Mean Teacher papers,
for small images (28-32 px, 1 or 3 channels).

Layout at width_multiplier=1 (Laine & Aila 2017; Tarvainen & Valpola 2017, Table 5):

    3 x [conv 3x3, 128]   max-pool 2x2   dropout
    3 x [conv 3x3, 256]   max-pool 2x2   dropout
    conv 3x3, 512 (valid padding)   conv 1x1, 256   conv 1x1, 128   global average pool
    dense -> num_classes  (one or two heads)

Every conv is followed by batch norm and a leaky ReLU (slope 0.1). The reference uses weight
normalisation with mean-only batch norm; we use ordinary batch norm. width_multiplier scales the
channel counts (0.25 gives 32/64/128 channels, about 1/16 of the compute). The valid 3x3 conv
falls back to same padding when the pooled map is too small for it (images under 12 px).
"""

import keras
import tensorflow as tf
from keras import layers

from tfssl.models.layers import BATCH_NORM_EPSILON, ConfigMixin

LEAKY_RELU_SLOPE = 0.1


@keras.saving.register_keras_serializable("tfssl")
class ConvBNLeakyReLU(ConfigMixin, layers.Layer):
    """Conv (no bias) -> batch norm -> leaky ReLU."""

    def __init__(
        self, filters, kernel_size=3, padding="same", bn_momentum=0.9, synchronized=False, **kwargs
    ):
        super().__init__(**kwargs)
        self._config = dict(
            filters=filters,
            kernel_size=kernel_size,
            padding=padding,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
        )
        self.conv = layers.Conv2D(
            filters,
            kernel_size,
            padding=padding,
            use_bias=False,
            kernel_initializer="he_normal",
            dtype=self.dtype_policy,
            name="conv",
        )
        # This name keeps batch norm out of weight decay (optim.EXCLUDE_FROM_WEIGHT_DECAY).
        self.bn = layers.BatchNormalization(
            momentum=bn_momentum,
            epsilon=BATCH_NORM_EPSILON,
            synchronized=synchronized,
            dtype=self.dtype_policy,
            name="batch_normalization",
        )

    def call(self, inputs, training=None):
        x = self.bn(self.conv(inputs), training=training)
        return tf.nn.leaky_relu(x, LEAKY_RELU_SLOPE)


@keras.saving.register_keras_serializable("tfssl")
class ConvLarge(ConfigMixin, keras.Model):
    """Images (B, H, W, C) in [0, 1] -> {'logits', 'final_avg_pool'} (+ 'cons_logits' with two
    heads).

    With num_heads=2 the second head ('cons_logits') is the one Mean Teacher's logit-distance cost
    ties to the first; with one head 'cons_logits' is absent.
    """

    def __init__(
        self,
        num_classes,
        width_multiplier=1.0,
        dropout_rate=0.5,
        num_heads=1,
        bn_momentum=0.9,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_heads not in (1, 2):
            raise ValueError(f"num_heads={num_heads} must be 1 or 2")
        self._config = dict(
            num_classes=num_classes,
            width_multiplier=width_multiplier,
            dropout_rate=dropout_rate,
            num_heads=num_heads,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
        )
        self.dropout_rate = dropout_rate

        def width(channels):
            return max(int(round(channels * width_multiplier)), 1)

        conv = dict(bn_momentum=bn_momentum, synchronized=synchronized, dtype=self.dtype_policy)
        self.block1 = self._track(
            "block1", [ConvBNLeakyReLU(width(128), **conv, name=f"conv1_{i + 1}") for i in range(3)]
        )
        self.block2 = self._track(
            "block2", [ConvBNLeakyReLU(width(256), **conv, name=f"conv2_{i + 1}") for i in range(3)]
        )
        self.pool = layers.MaxPooling2D(
            2, 2, padding="same", dtype=self.dtype_policy, name="max_pool"
        )
        self.conv3_1 = None  # its padding depends on the input size: made in build()
        self.conv3_2 = ConvBNLeakyReLU(width(256), 1, **conv, name="conv3_2")
        self.conv3_3 = ConvBNLeakyReLU(width(128), 1, **conv, name="conv3_3")
        dense = dict(dtype=self.dtype_policy, kernel_initializer="glorot_uniform")
        self.head = layers.Dense(num_classes, **dense, name="head_supervised")
        self.second_head = (
            layers.Dense(num_classes, **dense, name="head_supervised_2") if num_heads == 2 else None
        )
        self._conv3_1_args = dict(filters=width(512), **conv, name="conv3_1")

    def build(self, input_shape):
        pooled = (input_shape[1] + 3) // 4 if input_shape[1] is not None else None
        padding = "valid" if pooled is None or pooled >= 3 else "same"
        self.conv3_1 = ConvBNLeakyReLU(kernel_size=3, padding=padding, **self._conv3_1_args)
        super().build(input_shape)

    def _dropout(self, x, training):
        if training and self.dropout_rate > 0:
            # tf.nn.dropout's op-level RNG needs no seed variable, so it also runs under
            # MirroredStrategy.
            return tf.nn.dropout(x, rate=self.dropout_rate)
        return x

    def call(self, images, training=None):
        x = images
        for layer in self.block1:
            x = layer(x, training=training)
        x = self._dropout(self.pool(x), training)
        for layer in self.block2:
            x = layer(x, training=training)
        x = self._dropout(self.pool(x), training)
        x = self.conv3_1(x, training=training)
        x = self.conv3_3(self.conv3_2(x, training=training), training=training)
        features = tf.reduce_mean(x, [1, 2])
        outputs = {"logits": self.head(features), "final_avg_pool": features}
        if self.second_head is not None:
            outputs["cons_logits"] = self.second_head(features)
        return outputs
