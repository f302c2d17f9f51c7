"""Multiple-instance learning networks (Ilse, Tomczak & Welling, ICML 2018).

A bag X = {x_1..x_n} goes through an instance encoder, h_k = f(x_k) in R^L, a permutation-
invariant pooling z = sum_k a_k h_k (or a max / mean), and a classifier on z:

    attention        a_k = softmax_k( w^T tanh(V h_k + b_V) )
    gated attention  a_k = softmax_k( w^T (tanh(V h_k + b_V) * sigm(U h_k + b_U)) )
    mean             a_k = 1 / n
    max              z_l = max_k h_kl; a_k = share of the L dimensions whose maximum is h_k's
                     (split equally between tied instances)

with V, U in R^{D x L} (D = --mil_attention_dim) and w in R^D (a bias on w would cancel in the
softmax). The classifier is one dense layer: one logit (the Bernoulli parameter is its sigmoid)
for two classes, else K logits. Bags in a batch are padded; padded instances are never encoded
(their embeddings are zero) and get exactly zero weight.

Instance encoders: the paper's LeNet-style network for MNIST-bags (conv 5x5 20, ReLU, max-pool
2; conv 5x5 50, ReLU, max-pool 2; dense 500, ReLU), or the SimCLR ResNet of tfssl (which a
pretraining checkpoint's encoder loads into).
"""

import keras
import tensorflow as tf
from keras import layers

from tfssl.models.layers import ConfigMixin
from tfssl.models.resnet import ResNet

POOLINGS = ("max", "mean", "attention", "gated_attention")


@keras.saving.register_keras_serializable("tfssl")
class LeNetEncoder(ConfigMixin, layers.Layer):
    """Images (B, H, W, C) in [0, 1] -> (B, units): the paper's MNIST-bags feature extractor."""

    def __init__(self, filters=(20, 50), units=500, **kwargs):
        super().__init__(**kwargs)
        self._config = dict(filters=tuple(filters), units=units)
        dtype = self.dtype_policy
        self.conv1 = layers.Conv2D(filters[0], 5, activation="relu", dtype=dtype, name="conv1")
        self.conv2 = layers.Conv2D(filters[1], 5, activation="relu", dtype=dtype, name="conv2")
        self.pool = layers.MaxPooling2D(2, 2, dtype=dtype, name="max_pool")
        self.dense = layers.Dense(units, activation="relu", dtype=dtype, name="dense")
        self.num_features = units

    def call(self, images, training=None):
        x = self.pool(self.conv2(self.pool(self.conv1(images))))
        return self.dense(tf.reshape(x, [tf.shape(x)[0], x.shape[1] * x.shape[2] * x.shape[3]]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_features)


@keras.saving.register_keras_serializable("tfssl")
class MILPooling(ConfigMixin, layers.Layer):
    """(embeddings (B, N, L), mask (B, N) bool) -> (bag embeddings (B, L), weights (B, N))."""

    def __init__(self, pooling="attention", attention_dim=128, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not one of {POOLINGS}")
        self._config = dict(pooling=pooling, attention_dim=attention_dim)
        self.pooling = pooling
        dtype = self.dtype_policy
        self.V = self.U = self.w = None
        if pooling in ("attention", "gated_attention"):
            self.V = layers.Dense(attention_dim, activation="tanh", dtype=dtype, name="V")
            self.w = layers.Dense(1, use_bias=False, dtype=dtype, name="w")
        if pooling == "gated_attention":
            self.U = layers.Dense(attention_dim, activation="sigmoid", dtype=dtype, name="U")

    def build(self, input_shape):
        if self.V is not None:
            self.V.build(input_shape)
            self.w.build((*input_shape[:-1], self.V.units))
        if self.U is not None:
            self.U.build(input_shape)

    def attention_scores(self, embeddings):
        """The unnormalised attention a_k is the softmax of: (B, N)."""
        hidden = self.V(embeddings)
        if self.U is not None:
            hidden = hidden * self.U(embeddings)
        return self.w(hidden)[..., 0]

    def call(self, embeddings, mask):
        mask = tf.cast(mask, tf.bool)
        embeddings = tf.cast(embeddings, tf.float32)  # weights that sum to 1 under mixed precision
        real = tf.cast(mask, embeddings.dtype)
        if self.pooling == "max":
            masked = tf.where(mask[..., None], embeddings, tf.cast(-float("inf"), embeddings.dtype))
            pooled = tf.reduce_max(masked, axis=1)
            # Each dimension's credit goes to the instances holding its maximum, split on ties.
            winners = tf.cast(tf.equal(masked, pooled[:, None]), real.dtype)  # (B, N, L)
            winners /= tf.reduce_sum(winners, axis=1, keepdims=True)
            return pooled, tf.reduce_mean(winners, axis=2)
        if self.pooling == "mean":
            weights = real / tf.reduce_sum(real, axis=1, keepdims=True)
        else:
            scores = tf.cast(self.attention_scores(embeddings), tf.float32)
            scores = tf.where(mask, scores, tf.cast(-float("inf"), scores.dtype))
            weights = tf.where(mask, tf.nn.softmax(scores, axis=1), tf.zeros_like(scores))
        return tf.einsum("bn,bnl->bl", weights, embeddings), weights


@keras.saving.register_keras_serializable("tfssl")
class MILModel(ConfigMixin, keras.Model):
    """A bag classifier. call() takes {'instances': (B, N, H, W, C), 'mask': (B, N)}, or one bag
    (N, H, W, C), and returns {'logits' (B, 1 or K), 'attention' (B, N), 'bag_embedding'}."""

    def __init__(
        self,
        num_classes=2,
        encoder="lenet",
        encoder_config=None,
        pooling="attention",
        attention_dim=128,
        freeze_encoder=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            num_classes=num_classes,
            encoder=encoder,
            encoder_config=encoder_config,
            pooling=pooling,
            attention_dim=attention_dim,
            freeze_encoder=freeze_encoder,
        )
        dtype = self.dtype_policy
        if encoder == "lenet":
            self.encoder = LeNetEncoder(dtype=dtype, name="lenet")
        else:
            self.encoder = ResNet(**(encoder_config or {}), dtype=dtype, name="resnet")
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self.encoder.trainable = False
        self.pooling = MILPooling(pooling, attention_dim, dtype=dtype, name="mil_pooling")
        self.classifier = layers.Dense(
            1 if num_classes == 2 else num_classes, dtype=dtype, name="bag_classifier"
        )

    def call(self, inputs, training=None):
        if isinstance(inputs, dict):
            instances, mask = inputs["instances"], tf.cast(inputs["mask"], tf.bool)
        else:  # one bag
            instances = inputs[None]
            mask = tf.ones(tf.shape(instances)[:2], tf.bool)
        # Only real instances are encoded: padding never reaches the encoder (or its batch norm).
        features = self.encoder(
            tf.boolean_mask(instances, mask), training=training and not self.freeze_encoder
        )
        if self.freeze_encoder:
            features = tf.stop_gradient(features)
        shape = tf.concat([tf.shape(mask, out_type=tf.int64), [features.shape[-1]]], 0)
        embeddings = tf.scatter_nd(tf.where(mask), features, shape)
        pooled, weights = self.pooling(embeddings, mask)
        return {
            "logits": self.classifier(pooled),
            "attention": weights,
            "bag_embedding": pooled,
        }
