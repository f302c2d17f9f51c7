"""Mixed precision gives the float32 loss and gradients within bfloat16 tolerance on the same
batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_config
from tfssl.losses.contrastive import nt_xent
from tfssl.models.factory import build_simclr_model


def loss_and_grads(policy, views):
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(3)
        cfg = tiny_config(width_multiplier=0.125, proj_out_dim=32)
        model = build_simclr_model(cfg, 0, (16, 16, 3))
        with tf.GradientTape() as tape:
            projection = model(views, training=True)["projection"]
            first, second = tf.split(projection, 2)
            loss, _, _ = nt_xent(first, second, 0.5)
        grads = tape.gradient(loss, model.trainable_variables)
        return (
            float(loss),
            [tf.cast(g, tf.float32).numpy() for g in grads if g is not None],
            [v.dtype for v in model.variables],
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_matches_float32(policy):
    views = tf.random.uniform([32, 16, 16, 3], seed=5)
    loss_32, grads_32, _ = loss_and_grads("float32", views)
    loss_16, grads_16, dtypes = loss_and_grads(policy, views)
    assert all(d == "float32" for d in dtypes)  # variables stay float32
    assert loss_16 == pytest.approx(loss_32, rel=0.02)
    cosines = [
        np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)
        for a, b in zip(grads_32, grads_16)
        if np.linalg.norm(a) > 1e-6
    ]
    assert np.median(cosines) > 0.95
