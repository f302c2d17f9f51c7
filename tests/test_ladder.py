"""Ladder Networks: the combinator and denoising cost against numpy, the clean path as the
classifier, config round trips, and real training steps of the full MLP ladder and the conv
Gamma-model."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import assert_config_round_trip, tiny_config
from tfssl import restore
from tfssl.errors import ConfigError
from tfssl.losses.ladder import BATCH_NORM_EPSILON, denoising_cost, gaussian_combinator
from tfssl.methods.ladder import ConstantThenLinearDecay, denoising_weights, layer_costs
from tfssl.models.factory import build_by_calling
from tfssl.models.ladder import (
    BatchNormalizer,
    GaussianCombinator,
    LadderEncoderLayer,
    LadderNetwork,
    conv_small_layer_specs,
    mlp_layer_specs,
)
from tfssl.train import launch


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_combinator(z, u, a):
    """The paper's vanilla g, eq. (2), per unit."""
    mu = a[0] * sigmoid(a[1] * u + a[2]) + a[3] * u + a[4]
    v = a[5] * sigmoid(a[6] * u + a[7]) + a[8] * u + a[9]
    return (z - mu) * v + mu


def tiny_mlp(hidden=(5,), num_classes=3, decoder="full"):
    return build_by_calling(
        LadderNetwork(mlp_layer_specs(hidden, num_classes), decoder, dtype="float32"), (2, 3, 1)
    )


# --- the combinator g ---
def test_gaussian_combinator_matches_the_paper_formula():
    rng = np.random.default_rng(0)
    z, u = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    a = [rng.normal(size=6) for _ in range(10)]
    expected = numpy_combinator(z, u, a)
    got = gaussian_combinator(
        tf.constant(z, tf.float32),
        tf.constant(u, tf.float32),
        [tf.constant(p, tf.float32) for p in a],
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    layer = GaussianCombinator()
    layer.build((None, 6))
    for variable, value in zip(layer.a, a):
        variable.assign(value)
    np.testing.assert_allclose(
        layer(z.astype(np.float32), u.astype(np.float32)).numpy(), expected, rtol=1e-5, atol=1e-5
    )


def test_combinator_starts_as_in_the_reference_code():
    layer = GaussianCombinator()
    layer.build((None, 3))
    values = [v.numpy() for v in layer.a]
    for i, value in enumerate(values, start=1):
        np.testing.assert_array_equal(
            value, np.full(3, 1.0 if i in (2, 7) else 0.0), err_msg=f"a{i}"
        )
    z = np.array([[1.0, -2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(layer(z, z).numpy(), 0.0)  # mu = 0 and v = 0 at the start


# --- the denoising cost ---
def test_denoising_cost_matches_numpy():
    rng = np.random.default_rng(1)
    z, estimate = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    mean, variance = rng.normal(size=4), rng.uniform(0.5, 2.0, size=4)
    expected = np.sum((z - (estimate - mean) / np.sqrt(variance)) ** 2) / (3 * 4)
    got = denoising_cost(*(tf.constant(x, tf.float32) for x in (z, estimate, mean, variance)))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # The input layer has no statistics: the plain mean squared error.
    assert float(denoising_cost(tf.constant(z), tf.constant(estimate))) == pytest.approx(
        np.mean((z - estimate) ** 2)
    )


def test_denoising_cost_is_zero_for_a_perfect_estimate():
    rng = np.random.default_rng(2)
    z_pre = rng.normal(2.0, 3.0, size=(5, 4)).astype(np.float32)
    mean, variance = z_pre.mean(0), z_pre.var(0)
    z_clean = (z_pre - mean) / np.sqrt(variance + BATCH_NORM_EPSILON)
    assert float(denoising_cost(z_clean, z_pre, mean, variance)) == pytest.approx(0.0, abs=1e-10)
    assert float(denoising_cost(z_clean, z_pre + 0.1, mean, variance)) > 1e-4


def test_zero_noise_and_a_perfect_decoder_give_zero_cost():
    """With no noise z~ = z; combinators set to z^(l) = sigma_l z~(l) + mu_l make z^_BN = z
    exactly."""
    model = tiny_mlp(hidden=(5, 4))
    images = tf.random.stateless_uniform([8, 2, 3, 1], [1, 2])
    clean = model.encode(images, training=True)
    corrupted = model.encode(images, noise_std=0.0, training=True)
    for z_clean, z_corrupted in zip(clean.z, corrupted.z):
        np.testing.assert_array_equal(z_clean.numpy(), z_corrupted.numpy())
    # Before: the initial combinators output 0, so C_d(l) = mean((z + mu / sigma)^2) (z at the
    # input).
    costs = layer_costs(model, clean, corrupted)
    assert sorted(costs) == [0, 1, 2, 3]
    for layer, cost in costs.items():
        z = clean.z[layer].numpy()
        if layer == 0:
            expected = np.mean(z**2)
        else:
            mean, variance = clean.mean[layer].numpy(), clean.variance[layer].numpy()
            expected = np.mean((z + mean / np.sqrt(variance + BATCH_NORM_EPSILON)) ** 2)
        assert float(cost) == pytest.approx(expected, rel=1e-5), layer
    for layer, combinator in zip(model.decoded_layers, model.combinators):
        a = [np.zeros(combinator.a[0].shape) for _ in range(10)]
        if layer == 0:
            a[9][:] = 1.0  # v = 1, mu = 0: z^ = z~
        else:  # v = sigma, mu = mean / (1 - sigma): (z - mu) sigma + mu = sigma z + mean
            sigma = np.sqrt(clean.variance[layer].numpy() + BATCH_NORM_EPSILON)
            a[9][:], a[4][:] = sigma, clean.mean[layer].numpy() / (1.0 - sigma)
        for variable, value in zip(combinator.a, a):
            variable.assign(value)
    for layer, cost in layer_costs(model, clean, corrupted).items():
        assert float(cost) == pytest.approx(0.0, abs=1e-8), layer


# --- configuration ---
@pytest.mark.parametrize(
    "layer",
    [
        BatchNormalizer(momentum=0.9, synchronized=True),
        LadderEncoderLayer("conv_full", units=8, kernel_size=5, activation="relu", bn_momentum=0.9),
        LadderEncoderLayer("dense", units=10, activation="logits", matmul_dtype="mixed_bfloat16"),
        GaussianCombinator(),
        LadderNetwork(conv_small_layer_specs(10), "top", bn_momentum=0.95),
        LadderNetwork(mlp_layer_specs([20, 10], 4), "full"),
    ],
)
def test_get_config_round_trip(layer):
    assert_config_round_trip(layer)


def test_learning_rate_schedule_is_constant_then_linear_to_zero():
    schedule = ConstantThenLinearDecay(0.002, 300)  # decay from step 200
    for step, expected in (
        (0, 0.002),
        (199, 0.002),
        (200, 0.002),
        (250, 0.001),
        (290, 0.0002),
        (300, 0.0),
        (400, 0.0),
    ):
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-9), step
    clone = ConstantThenLinearDecay.from_config(schedule.get_config())
    assert float(clone(250)) == pytest.approx(0.001)


def test_denoising_weights():
    assert denoising_weights(tiny_config(mode="ladder"), 6) == {
        0: 1000,
        1: 10,
        2: 0.1,
        3: 0.1,
        4: 0.1,
        5: 0.1,
        6: 0.1,
    }
    assert denoising_weights(tiny_config(mode="ladder", denoising_costs="0,0,0,0"), 3) == {}
    assert denoising_weights(tiny_config(mode="ladder", ladder_model="gamma"), 9) == {9: 1.0}
    assert denoising_weights(
        tiny_config(mode="ladder", ladder_model="gamma", denoising_costs="0.5"), 9
    ) == {9: 0.5}
    with pytest.raises(ConfigError, match="has 7 values but the ladder has 4 layers"):
        denoising_weights(tiny_config(mode="ladder"), 3)


# --- training runs ---
@pytest.fixture(scope="module")
def runs(gray_folder, tmp_path_factory):
    """A full MLP ladder that learns the easy synthetic classes, and two Gamma-model steps."""
    root = tmp_path_factory.mktemp("ladder")
    common = dict(mode="ladder", dataset=f"folder:{gray_folder}", num_labels=16, eval_steps=1)
    full = launch.train(
        tiny_config(
            model_dir=str(root / "full"),
            ladder_hidden_sizes="32,16",
            denoising_costs="10,1,0.1,0.1",
            train_steps=40,
            steps_per_loop=20,
            **common,
        )
    )
    gamma = launch.train(
        tiny_config(model_dir=str(root / "gamma"), ladder_model="gamma", train_steps=2, **common)
    )
    return root, full, gamma


def test_full_ladder_trains_and_reports_every_layer(runs):
    root, full, _ = runs
    assert full["global_step"] == 40 and full["num_labeled_examples"] == 16
    train = full["train"]
    for name in (
        "loss",
        "supervised_loss",
        "supervised_acc",
        "denoising_cost",
        "denoising_cost_0",
        "denoising_cost_1",
        "denoising_cost_2",
        "denoising_cost_3",
    ):
        assert np.isfinite(train[name]), name
    weighted = (
        10 * train["denoising_cost_0"]
        + train["denoising_cost_1"]
        + 0.1 * (train["denoising_cost_2"] + train["denoising_cost_3"])
    )
    assert train["denoising_cost"] == pytest.approx(weighted, rel=1e-4)
    assert train["loss"] == pytest.approx(
        train["supervised_loss"] + train["denoising_cost"], rel=1e-4
    )
    assert full["eval"]["top_1_accuracy"] >= 0.9  # 4 easy classes, chance 0.25
    assert tf.train.latest_checkpoint(str(root / "full")).endswith("-40")


def test_gamma_model_trains_its_top_layer_only(runs):
    _, _, gamma = runs
    assert gamma["global_step"] == 2
    assert np.isfinite(gamma["train"]["loss"]) and np.isfinite(gamma["train"]["denoising_cost_9"])
    assert not any(
        name.startswith("denoising_cost_") and name != "denoising_cost_9" for name in gamma["train"]
    )
    method, _, _, _ = restore.load_trained(os.path.join(str(runs[0]), "gamma"))
    assert [spec["transform"] for spec in method.model.get_config()["layer_specs"]][:2] == [
        "conv_full",
        "maxpool",
    ]


def numpy_clean_forward(model, images):
    """The clean encoder at inference, from the weights: population statistics, shift, ReLU, scaled
    logits."""
    h = images.reshape(len(images), -1)
    for layer in model.encoder_layers:
        z_pre = h @ layer.linear.kernel.numpy()
        mean, variance = (
            layer.normalizer.moving_mean.numpy(),
            layer.normalizer.moving_variance.numpy(),
        )
        z = (z_pre - mean) / np.sqrt(variance + BATCH_NORM_EPSILON) + layer.shift.numpy()
        h = np.maximum(z, 0.0) if layer.activation == "relu" else layer.scale.numpy() * z
    return h


def test_predictions_come_from_the_clean_path(runs):
    root, _, _ = runs
    method, data, _, _ = restore.load_trained(str(root / "full"))
    images = next(iter(data.eval_batches(method.eval_view, 8)))[0]
    logits = method.eval_logits(images).numpy()
    np.testing.assert_array_equal(logits, method.eval_logits(images).numpy())  # deterministic
    np.testing.assert_allclose(
        logits, numpy_clean_forward(method.model, images.numpy()), rtol=1e-4, atol=1e-4
    )
    exported = method.export_outputs(images)
    np.testing.assert_array_equal(exported["logits"].numpy(), logits)
    assert exported["features"].shape == (8, 16)
    # The population statistics moved away from their initial values (0 and 1) during training.
    assert not np.allclose(method.model.encoder_layers[0].normalizer.moving_mean.numpy(), 0.0)
    corrupted = method.model.encode(images, noise_std=0.3, training=True).logits.numpy()
    clean_batch = method.model.encode(images, training=True).logits.numpy()
    assert np.abs(corrupted - clean_batch).max() > 1e-2


def test_zero_denoising_costs_train_the_supervised_baseline(gray_folder, tmp_path):
    from tfssl.data.pipeline import DataBundle
    from tfssl.methods.ladder import Ladder

    cfg = tiny_config(
        mode="ladder",
        dataset=f"folder:{gray_folder}",
        num_labels=16,
        ladder_hidden_sizes="8",
        denoising_costs="0,0,0",
        model_dir=str(tmp_path),
    )
    method = Ladder(cfg, DataBundle(cfg, cfg.run_dir))
    method.build()
    batch = next(iter(method.train_dataset(None, 0)))
    assert batch[0][0].shape == (16, 16, 16, 1) and batch[1][0].shape == (16, 16, 16, 1)
    with tf.GradientTape() as tape:
        loss, metrics = method.loss(batch)
    assert float(loss) == float(metrics["supervised_loss"]) and "denoising_cost" not in metrics
    gradients = dict(
        zip(
            [v.path for v in method.model.trainable_variables],
            tape.gradient(loss, method.model.trainable_variables),
        )
    )
    assert all(
        gradients[path] is None for path in gradients if "/g_" in path or "/decoder_" in path
    )
    assert all(gradients[path] is not None for path in gradients if "/encoder_" in path)


@pytest.mark.slow  # over 30 s on 2 cores
def test_two_replicas_train_with_synchronised_statistics(gray_folder, tmp_path):
    result = launch.train(
        tiny_config(
            mode="ladder",
            dataset=f"folder:{gray_folder}",
            num_labels=16,
            eval_steps=1,
            strategy="mirrored",
            ladder_hidden_sizes="8",
            denoising_costs="1,1,1",
            train_steps=2,
            model_dir=str(tmp_path),
        )
    )
    assert result["global_step"] == 2 and np.isfinite(result["train"]["loss"])
    assert np.isfinite(result["train"]["denoising_cost_0"]) and result["eval"]["num_examples"] > 0
