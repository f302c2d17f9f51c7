"""Layers every tfssl network shares: the constructor-argument get_config of ConfigMixin and the
fused BatchNormRelu of the official SimCLR ResNet (BN epsilon 1e-5)."""

import keras
import tensorflow as tf
from keras import layers

BATCH_NORM_EPSILON = 1e-5


class ConfigMixin:
    """get_config from the constructor arguments stored in self._config."""

    def get_config(self):
        return {**super().get_config(), **self._config}

    def _track(self, name, items):
        """Keras 3 does not expose layers held in lists to tf.train.Checkpoint: name each one."""
        for i, item in enumerate(items):
            setattr(self, f"{name}_{i}", item)
        return items


@keras.saving.register_keras_serializable("tfssl")
class BatchNormRelu(ConfigMixin, layers.Layer):
    """Batch norm (optionally followed by ReLU) computed with TF's fused kernel.

    The variables are those of a keras BatchNormalization (so checkpoints, paths
    and synchronised BN are unchanged), but the arithmetic is one fused op, which
    is much faster on CPU than Keras 3's separate moments and normalisation,
    especially under mixed_bfloat16. The moving averages follow Keras:
    moving = momentum * moving + (1 - momentum) * batch statistic (biased variance).
    Synchronised BN (global BN) all-reduces the sum, then the sum of squared
    deviations from the global mean: two passes, as precise as one replica.
    """

    def __init__(
        self, relu=True, init_zero=False, center=True, momentum=0.9, synchronized=False, **kwargs
    ):
        super().__init__(**kwargs)
        self._config = dict(
            relu=relu,
            init_zero=init_zero,
            center=center,
            momentum=momentum,
            synchronized=synchronized,
        )
        self.relu = relu
        self.bn = layers.BatchNormalization(
            momentum=momentum,
            epsilon=BATCH_NORM_EPSILON,
            center=center,
            synchronized=synchronized,
            gamma_initializer="zeros" if init_zero else "ones",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.bn.build(input_shape)

    def call(self, inputs, training=None):
        bn = self.bn
        training = bool(training) and bn.trainable
        context = tf.distribute.get_replica_context()
        if (
            training
            and bn.synchronized
            and context is not None
            and context.num_replicas_in_sync > 1
        ):
            x = self._synchronized(inputs, context)
        else:
            x = self._fused(inputs, training)
        return tf.nn.relu(x) if self.relu else x

    def _update_moving_statistics(self, mean, variance):
        bn = self.bn
        bn.moving_mean.assign(bn.moving_mean * bn.momentum + mean * (1.0 - bn.momentum))
        bn.moving_variance.assign(bn.moving_variance * bn.momentum + variance * (1.0 - bn.momentum))

    def _synchronized(self, inputs, context):
        bn = self.bn
        x = tf.cast(inputs, tf.float32)
        axes = list(range(inputs.shape.rank - 1))
        total = lambda value: context.all_reduce(tf.distribute.ReduceOp.SUM, value)  # noqa: E731
        count = total(tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32))
        mean = total(tf.reduce_sum(x, axes)) / count
        variance = total(tf.reduce_sum(tf.square(x - mean), axes)) / count
        self._update_moving_statistics(mean, variance)
        y = tf.nn.batch_normalization(
            x, mean, variance, bn.beta if bn.center else None, bn.gamma, bn.epsilon
        )
        return tf.cast(y, inputs.dtype)

    def _fused(self, inputs, training):
        bn = self.bn
        shape = tf.shape(inputs)
        x = inputs if inputs.shape.rank == 4 else tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]])
        offset = bn.beta if bn.center else tf.zeros_like(bn.gamma)
        if not training:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x,
                bn.gamma,
                offset,
                bn.moving_mean,
                bn.moving_variance,
                epsilon=bn.epsilon,
                is_training=False,
            )
        else:
            y, mean, corrected_variance = tf.compat.v1.nn.fused_batch_norm(
                x, bn.gamma, offset, epsilon=bn.epsilon, is_training=True
            )
            count = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
            self._update_moving_statistics(
                mean, corrected_variance * (count - 1.0) / count
            )  # op gives Bessel's
        return y if inputs.shape.rank == 4 else tf.reshape(y, shape)
