"""A small Vision Transformer encoder and the light MAE decoder (He et al. 2022).

Pre-norm transformer blocks (LayerNorm eps 1e-6, GELU MLP of 4x the width), fixed 2-D sine-cosine
position embeddings, Xavier-uniform dense weights, as in the MAE code. There is no class token:
the encoder's pooled feature is the mean of its final (normalised) tokens, MAE's global pooling for
fine-tuning.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfssl.models.layers import ConfigMixin

LAYER_NORM_EPSILON = 1e-6


def sincos_position_embedding(cells, width):
    """(cells², width) fixed embedding of a cells x cells grid, row by row: the first half of the
    features encodes the row, the second the column, each as sin and cos of position * omega_i,
    omega_i = 10000^(-i / (width / 4)), i < width / 4."""
    if width % 4:
        raise ValueError(f"the embedding width {width} must be a multiple of 4")
    omega = 1.0 / 10000 ** (np.arange(width // 4) / (width / 4))
    rows, cols = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")

    def encode(position):
        angles = position.reshape(-1)[:, None] * omega[None]
        return np.concatenate([np.sin(angles), np.cos(angles)], 1)

    return np.concatenate([encode(rows), encode(cols)], 1).astype(np.float32)


def _dense(units, dtype, name=None, **kwargs):
    return layers.Dense(
        units, kernel_initializer="glorot_uniform", dtype=dtype, name=name, **kwargs
    )


@keras.saving.register_keras_serializable("tfssl")
class TransformerBlock(ConfigMixin, layers.Layer):
    """x + Attention(LN(x)), then x + MLP(LN(x)); multi-head self-attention over all tokens."""

    def __init__(self, width, num_heads, mlp_ratio=4, **kwargs):
        super().__init__(**kwargs)
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by {num_heads} heads")
        self._config = dict(width=width, num_heads=num_heads, mlp_ratio=mlp_ratio)
        self.num_heads = num_heads
        dtype = self.dtype_policy
        self.norm_1 = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=dtype)
        self.qkv = _dense(3 * width, dtype, "qkv")
        self.proj = _dense(width, dtype, "proj")
        self.norm_2 = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=dtype)
        self.fc_1 = _dense(mlp_ratio * width, dtype, "fc1")
        self.fc_2 = _dense(width, dtype, "fc2")

    def build(self, input_shape):
        width = input_shape[-1]
        for layer, size in (
            (self.norm_1, width),
            (self.qkv, width),
            (self.proj, width),
            (self.norm_2, width),
            (self.fc_1, width),
            (self.fc_2, self.fc_1.units),
        ):
            layer.build((None, None, size))

    def attention(self, x):
        batch, tokens, width = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
        head = width // self.num_heads
        qkv = tf.reshape(self.qkv(x), [batch, tokens, 3, self.num_heads, head])
        q, k, v = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))  # each (B, heads, N, head)
        scores = tf.matmul(q, k, transpose_b=True) * tf.cast(head**-0.5, q.dtype)
        weights = tf.nn.softmax(scores, axis=-1)
        out = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])
        return self.proj(tf.reshape(out, [batch, tokens, width]))

    def call(self, x):
        x = x + self.attention(self.norm_1(x))
        return x + self.fc_2(tf.nn.gelu(self.fc_1(self.norm_2(x)), approximate=False))


@keras.saving.register_keras_serializable("tfssl")
class VisionTransformer(ConfigMixin, layers.Layer):
    """ViT encoder: images (B, S, S, C) in [0, 1] -> pooled features (B, width).

    call(images, keep_indices=...) encodes only those patches (MAE's visible ones), each with its
    own position embedding. `fine_tune_after_block` freezes (and stops gradients through) the patch
    embedding and the first depth * k // 4 blocks for k = 0..3, and everything for 4 (a linear
    head), the ResNet's block groups read as quarters of the depth."""

    def __init__(
        self,
        image_size,
        patch_size=4,
        depth=6,
        width=128,
        num_heads=4,
        fine_tune_after_block=-1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if image_size % patch_size:
            raise ValueError(f"patch size {patch_size} does not divide image size {image_size}")
        self._config = dict(
            image_size=image_size,
            patch_size=patch_size,
            depth=depth,
            width=width,
            num_heads=num_heads,
            fine_tune_after_block=fine_tune_after_block,
        )
        self.patch_size = patch_size
        self.num_patches = (image_size // patch_size) ** 2
        self.fine_tune_after_block = fine_tune_after_block
        dtype = self.dtype_policy
        self.patch_embed = layers.Conv2D(
            width,
            patch_size,
            strides=patch_size,
            kernel_initializer="glorot_uniform",
            dtype=dtype,
            name="patch_embed",
        )
        self.position = sincos_position_embedding(image_size // patch_size, width)
        self.blocks = self._track(
            "block",
            [
                TransformerBlock(width, num_heads, dtype=dtype, name=f"block{i}")
                for i in range(depth)
            ],
        )
        self.norm = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=dtype, name="norm")
        self.num_frozen_blocks = depth * max(fine_tune_after_block, 0) // 4
        if fine_tune_after_block >= 0:
            self.patch_embed.trainable = False
            for block in self.blocks[: self.num_frozen_blocks]:
                block.trainable = False
        if fine_tune_after_block >= 4:
            self.norm.trainable = False
        self.num_features = width

    def build(self, input_shape):
        self.patch_embed.build(input_shape)
        width = self._config["width"]
        for block in self.blocks:
            block.build((None, None, width))
        self.norm.build((None, None, width))

    def embed(self, images):
        """(B, N, width) patch tokens with their position embeddings."""
        x = self.patch_embed(images)
        x = tf.reshape(x, [tf.shape(x)[0], self.num_patches, x.shape[-1]])
        return x + tf.cast(self.position, x.dtype)

    def call(self, images, training=None, return_endpoints=False, keep_indices=None):
        x = self.embed(images)
        if keep_indices is not None:
            x = tf.gather(x, keep_indices, batch_dims=1)
        if self.fine_tune_after_block == 0:
            x = tf.stop_gradient(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i + 1 == self.num_frozen_blocks:
                x = tf.stop_gradient(x)
        tokens = self.norm(x)
        if self.fine_tune_after_block >= 4:
            tokens = tf.stop_gradient(tokens)
        pooled = tf.reduce_mean(tokens, axis=1)
        if return_endpoints:
            return {"tokens": tokens, "final_avg_pool": pooled}
        return pooled

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_features)


@keras.saving.register_keras_serializable("tfssl")
class MAEDecoder(ConfigMixin, layers.Layer):
    """MAE's light decoder: the visible tokens projected to its width, a shared learned mask token
    for every removed patch, all put back in image order with fixed position embeddings, a few
    transformer blocks, and a linear prediction of each patch's pixels."""

    def __init__(self, image_size, patch_size, channels, depth=2, width=64, num_heads=2, **kwargs):
        super().__init__(**kwargs)
        self._config = dict(
            image_size=image_size,
            patch_size=patch_size,
            channels=channels,
            depth=depth,
            width=width,
            num_heads=num_heads,
        )
        dtype = self.dtype_policy
        self.num_patches = (image_size // patch_size) ** 2
        self.embed = _dense(width, dtype, "decoder_embed")
        self.mask_token = self.add_weight(
            shape=(width,),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="mask_token",
        )
        self.position = sincos_position_embedding(image_size // patch_size, width)
        self.blocks = self._track(
            "block",
            [
                TransformerBlock(width, num_heads, dtype=dtype, name=f"decoder_block{i}")
                for i in range(depth)
            ],
        )
        self.norm = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=dtype)
        self.prediction = _dense(patch_size * patch_size * channels, dtype, "decoder_pred")

    def call(self, visible_tokens, restore):
        """visible_tokens (B, K, encoder width), restore (B, N) from random_masking -> (B, N,
        patch pixels)."""
        x = self.embed(visible_tokens)
        batch, kept = tf.shape(x)[0], tf.shape(x)[1]
        masks = tf.tile(
            tf.cast(self.mask_token, x.dtype)[None, None], [batch, self.num_patches - kept, 1]
        )
        x = tf.gather(tf.concat([x, masks], 1), restore, batch_dims=1)
        x = x + tf.cast(self.position, x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.prediction(self.norm(x))
