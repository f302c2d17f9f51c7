"""ResNet v1 for SimCLR: depths 18-200, width multiplier, selective kernels and squeeze-excitation.

Follows the official SimCLR resnet.py: BN epsilon 1e-5, the last BN of each
block zero-initialised, a projection shortcut in every group's first block,
ResNet-D shortcuts and stem when SK is on, and a CIFAR stem (3x3 conv, stride 1,
no max-pool) for images of 32 px or less. `fine_tune_after_block` freezes the
stem and the block groups before it (BN included) and stops gradients there.
"""

import keras
import tensorflow as tf
from keras import layers

from tfssl.models import conv
from tfssl.models.layers import BatchNormRelu, ConfigMixin

BLOCKS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


@keras.saving.register_keras_serializable("tfssl")
class ConvFixedPadding(ConfigMixin, layers.Layer):
    """Conv without bias whose padding depends only on kernel size (as in the official code).
    The keras Conv2D holds the kernel; tfssl.models.conv computes it (faster weight gradients)."""

    def __init__(self, filters, kernel_size, strides=1, **kwargs):
        super().__init__(**kwargs)
        self._config = dict(filters=filters, kernel_size=kernel_size, strides=strides)
        self.strides = strides
        self.padding = "SAME" if strides == 1 else "VALID"
        self.conv = layers.Conv2D(
            filters,
            kernel_size,
            strides,
            padding=self.padding.lower(),
            use_bias=False,
            kernel_initializer="variance_scaling",
            dtype=self.dtype_policy,
        )
        pad = kernel_size - 1
        self.paddings = [[0, 0], [pad // 2, pad - pad // 2], [pad // 2, pad - pad // 2], [0, 0]]

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, inputs):
        if self.strides > 1:
            inputs = tf.pad(inputs, self.paddings)
        kernel = tf.cast(self.conv.kernel, self.compute_dtype)
        return conv.conv2d(inputs, kernel, self.strides, self.padding)


@keras.saving.register_keras_serializable("tfssl")
class SelectiveKernelConv(ConfigMixin, layers.Layer):
    """SK convolution (SimCLRv2): two 3x3 paths mixed by a softmax attention over paths."""

    def __init__(
        self, filters, strides, sk_ratio, min_dim=32, bn_momentum=0.9, synchronized=False, **kwargs
    ):
        super().__init__(**kwargs)
        self._config = dict(
            filters=filters,
            strides=strides,
            sk_ratio=sk_ratio,
            min_dim=min_dim,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
        )
        bn = dict(momentum=bn_momentum, synchronized=synchronized, dtype=self.dtype_policy)
        self.conv = ConvFixedPadding(2 * filters, 3, strides, dtype=self.dtype_policy)
        self.bn = BatchNormRelu(**bn)
        self.reduce = layers.Conv2D(
            max(int(filters * sk_ratio), min_dim),
            1,
            use_bias=False,
            kernel_initializer="variance_scaling",
            dtype=self.dtype_policy,
        )
        self.reduce_bn = BatchNormRelu(**bn)
        self.expand = layers.Conv2D(
            2 * filters,
            1,
            use_bias=False,
            kernel_initializer="variance_scaling",
            dtype=self.dtype_policy,
        )

    def call(self, inputs, training=None):
        paths = tf.stack(tf.split(self.bn(self.conv(inputs), training=training), 2, axis=-1))
        context = tf.reduce_mean(tf.reduce_sum(paths, 0), [1, 2], keepdims=True)
        mixing = self.expand(self.reduce_bn(self.reduce(context), training=training))
        mixing = tf.nn.softmax(tf.stack(tf.split(mixing, 2, axis=-1)), axis=0)
        return tf.reduce_sum(paths * mixing, 0)


@keras.saving.register_keras_serializable("tfssl")
class SqueezeExcite(ConfigMixin, layers.Layer):
    def __init__(self, filters, se_ratio, **kwargs):
        super().__init__(**kwargs)
        self._config = dict(filters=filters, se_ratio=se_ratio)
        self.reduce = layers.Conv2D(
            max(1, int(filters * se_ratio)),
            1,
            kernel_initializer="variance_scaling",
            dtype=self.dtype_policy,
        )
        self.expand = None

    def build(self, input_shape):
        self.expand = layers.Conv2D(
            input_shape[-1], 1, kernel_initializer="variance_scaling", dtype=self.dtype_policy
        )

    def call(self, inputs):
        squeezed = tf.reduce_mean(inputs, [1, 2], keepdims=True)
        return inputs * tf.sigmoid(self.expand(tf.nn.relu(self.reduce(squeezed))))


@keras.saving.register_keras_serializable("tfssl")
class ResidualBlock(ConfigMixin, layers.Layer):
    """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 with 4x expansion) residual block."""

    def __init__(
        self,
        kind,
        filters,
        strides,
        use_projection=False,
        sk_ratio=0.0,
        se_ratio=0.0,
        bn_momentum=0.9,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            kind=kind,
            filters=filters,
            strides=strides,
            use_projection=use_projection,
            sk_ratio=sk_ratio,
            se_ratio=se_ratio,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
        )
        dtype = self.dtype_policy
        bn = dict(momentum=bn_momentum, synchronized=synchronized, dtype=dtype)
        out_filters = filters * (4 if kind == "bottleneck" else 1)
        self.shortcut = []
        if use_projection:
            if sk_ratio > 0:  # ResNet-D: average-pool, then a 1x1 conv
                if strides > 1:
                    self.shortcut.append(layers.ZeroPadding2D(((0, 1), (0, 1)), dtype=dtype))
                self.shortcut.append(
                    layers.AveragePooling2D(
                        2, strides, "same" if strides == 1 else "valid", dtype=dtype
                    )
                )
                self.shortcut.append(ConvFixedPadding(out_filters, 1, 1, dtype=dtype))
            else:
                self.shortcut.append(ConvFixedPadding(out_filters, 1, strides, dtype=dtype))
            self.shortcut.append(BatchNormRelu(relu=False, **bn))
        if kind == "basic":
            self.body = [
                ConvFixedPadding(filters, 3, strides, dtype=dtype),
                BatchNormRelu(**bn),
                ConvFixedPadding(filters, 3, 1, dtype=dtype),
            ]
        else:
            middle = (
                [
                    SelectiveKernelConv(
                        filters,
                        strides,
                        sk_ratio,
                        bn_momentum=bn_momentum,
                        synchronized=synchronized,
                        dtype=dtype,
                    )
                ]
                if sk_ratio > 0
                else [ConvFixedPadding(filters, 3, strides, dtype=dtype), BatchNormRelu(**bn)]
            )
            self.body = [
                ConvFixedPadding(filters, 1, 1, dtype=dtype),
                BatchNormRelu(**bn),
                *middle,
                ConvFixedPadding(out_filters, 1, 1, dtype=dtype),
            ]
        self.body.append(BatchNormRelu(relu=False, init_zero=True, **bn))
        if se_ratio > 0:
            self.body.append(SqueezeExcite(filters, se_ratio, dtype=dtype))
        self._track("shortcut", self.shortcut)
        self._track("body", self.body)

    def call(self, inputs, training=None):
        shortcut, x = inputs, inputs
        for layer in self.shortcut:
            shortcut = (
                layer(shortcut, training=training)
                if isinstance(layer, BatchNormRelu)
                else layer(shortcut)
            )
        for layer in self.body:
            x = (
                layer(x, training=training)
                if isinstance(layer, (BatchNormRelu, SelectiveKernelConv))
                else layer(x)
            )
        return tf.nn.relu(x + shortcut)


@keras.saving.register_keras_serializable("tfssl")
class ResNet(ConfigMixin, layers.Layer):
    """ResNet encoder: images (B, H, W, C) in [0, 1] -> pooled features (B, width * 512 or 2048)."""

    def __init__(
        self,
        depth=50,
        width_multiplier=1.0,
        cifar_stem=False,
        sk_ratio=0.0,
        se_ratio=0.0,
        bn_momentum=0.9,
        synchronized=False,
        fine_tune_after_block=-1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if depth not in BLOCKS:
            raise ValueError(f"resnet depth {depth} is not one of {sorted(BLOCKS)}")
        self._config = dict(
            depth=depth,
            width_multiplier=width_multiplier,
            cifar_stem=cifar_stem,
            sk_ratio=sk_ratio,
            se_ratio=se_ratio,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
            fine_tune_after_block=fine_tune_after_block,
        )
        self.fine_tune_after_block = fine_tune_after_block
        dtype = self.dtype_policy
        bn = dict(momentum=bn_momentum, synchronized=synchronized, dtype=dtype)

        def width(channels):
            return max(int(round(channels * width_multiplier)), 1)

        if cifar_stem:
            self.stem = [ConvFixedPadding(width(64), 3, 1, dtype=dtype), BatchNormRelu(**bn)]
        elif sk_ratio > 0:  # ResNet-D stem: three 3x3 convs
            self.stem = [
                ConvFixedPadding(width(32), 3, 2, dtype=dtype),
                BatchNormRelu(**bn),
                ConvFixedPadding(width(32), 3, 1, dtype=dtype),
                BatchNormRelu(**bn),
                ConvFixedPadding(width(64), 3, 1, dtype=dtype),
                BatchNormRelu(**bn),
                layers.MaxPooling2D(3, 2, "same", dtype=dtype),
            ]
        else:
            self.stem = [
                ConvFixedPadding(width(64), 7, 2, dtype=dtype),
                BatchNormRelu(**bn),
                layers.MaxPooling2D(3, 2, "same", dtype=dtype),
            ]
        kind, blocks_per_group = BLOCKS[depth]
        self.block_groups = []
        for group, (channels, blocks, strides) in enumerate(
            zip((64, 128, 256, 512), blocks_per_group, (1, 2, 2, 2))
        ):
            self.block_groups.append(
                [
                    ResidualBlock(
                        kind,
                        width(channels),
                        strides if b == 0 else 1,
                        use_projection=(b == 0),
                        sk_ratio=sk_ratio,
                        se_ratio=se_ratio,
                        bn_momentum=bn_momentum,
                        synchronized=synchronized,
                        dtype=dtype,
                        name=f"block_group{group + 1}_block{b}",
                    )
                    for b in range(blocks)
                ]
            )
        self._track("stem", self.stem)
        for group, blocks in enumerate(self.block_groups):
            self._track(f"block_group{group + 1}", blocks)
        frozen = self.stem + [
            b for g in self.block_groups[: max(fine_tune_after_block, 0)] for b in g
        ]
        if fine_tune_after_block >= 0:
            for layer in frozen:
                layer.trainable = False
        self.num_features = width(512) * (4 if kind == "bottleneck" else 1)

    def call(self, inputs, training=None, return_endpoints=False):
        endpoints = {}
        x = inputs
        for layer in self.stem:
            x = layer(x, training=training) if isinstance(layer, BatchNormRelu) else layer(x)
        endpoints["initial_max_pool"] = x
        for group, blocks in enumerate(self.block_groups):
            if group == self.fine_tune_after_block:
                x = tf.stop_gradient(x)
            for block in blocks:
                x = block(x, training=training)
            endpoints[f"block_group{group + 1}"] = x
        if self.fine_tune_after_block == 4:
            x = tf.stop_gradient(x)
        x = tf.reduce_mean(x, [1, 2])
        endpoints["final_avg_pool"] = x
        return endpoints if return_endpoints else x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_features)
