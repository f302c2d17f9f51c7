"""--bn_recalibration_batches: batch-norm statistics re-estimated after training, against numpy."""

import glob
import os

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tests.test_mean_teacher import mt_config
from tfssl import restore
from tfssl.data.pipeline import DataBundle
from tfssl.methods.mean_teacher import MeanTeacher
from tfssl.train import runtime
from tfssl.train.batch_norm import recalibrate_batch_norm
from tfssl.train.distribute import make_strategy
from tfssl.train.trainer import Trainer

EPSILON = 1e-3  # keras' BatchNormalization default


def test_statistics_are_the_average_of_the_batch_statistics():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 2)).astype(np.float32)
    network = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.BatchNormalization(momentum=0.99),
            keras.layers.Dense(2, use_bias=False),
            keras.layers.BatchNormalization(momentum=0.9),
        ]
    )
    network.layers[1].set_weights([kernel])
    first, second = network.layers[0], network.layers[2]
    for layer in (first, second):  # stale statistics that must not survive
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, 50.0, np.float32))
        layer.moving_variance.assign(np.full(layer.moving_variance.shape, 0.01, np.float32))
    batches = [rng.normal(loc=i, scale=1 + i, size=(8, 3)).astype(np.float32) for i in range(3)]

    assert recalibrate_batch_norm([network], batches) == 3

    normalized = [(x - x.mean(0)) / np.sqrt(x.var(0) + EPSILON) for x in batches]  # gamma 1, beta 0
    hidden = [x @ kernel for x in normalized]
    for layer, inputs in ((first, batches), (second, hidden)):
        np.testing.assert_allclose(
            layer.moving_mean.numpy(), np.mean([x.mean(0) for x in inputs], 0), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            layer.moving_variance.numpy(),
            np.mean([x.var(0) for x in inputs], 0),
            rtol=1e-4,
            atol=1e-5,
        )
    assert (first.momentum, second.momentum) == (0.99, 0.9)


def test_mean_teacher_saves_statistics_of_the_clean_train_images(gray_folder, tmp_path):
    """2 replicas; one recalibration batch holding the whole train split, so the first layer's
    statistics are the split's, whatever the shuffle."""
    paths = sorted(glob.glob(os.path.join(gray_folder, "train", "*", "*.png")))
    images = np.stack([np.asarray(Image.open(p), np.float32)[..., None] / 255 for p in paths])
    cfg = mt_config(
        gray_folder,
        tmp_path,
        train_steps=2,
        input_noise_std=0.5,
        bn_recalibration_batches=1,
        eval_batch_size=len(images),
    )
    runtime.setup_runtime(cfg)
    trainer = Trainer(cfg, MeanTeacher, DataBundle(cfg, cfg.run_dir), make_strategy("mirrored"))
    result = trainer.fit()
    before = result["eval_before_bn_recalibration"]  # the same figures, with the training averages
    assert (
        set(before) == set(result["eval"])
        and before["num_examples"] == result["eval"]["num_examples"]
    )
    assert before["loss"] != result["eval"]["loss"]
    saved = restore.load_trained(str(tmp_path))[0]
    for network in (saved.model, saved.student):
        first = network.block1[0]
        features = tf.nn.conv2d(images, first.conv.kernel, 1, "SAME").numpy()
        np.testing.assert_allclose(
            first.bn.moving_mean.numpy(), features.mean((0, 1, 2)), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            first.bn.moving_variance.numpy(), features.var((0, 1, 2)), rtol=1e-4, atol=1e-5
        )
    trained_first = trainer.method.model.block1[0].bn.moving_mean
    for replica_copy in trainer.strategy.experimental_local_results(trained_first.value):
        np.testing.assert_array_equal(
            replica_copy.numpy(), saved.model.block1[0].bn.moving_mean.numpy()
        )
