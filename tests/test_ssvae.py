"""The semi-supervised VAE: bounds against numpy written from the paper's formulas, config round
trips, and short real runs of M1, M2, M1+M2 and the labels-only baseline (figure, eval, export)."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import stats

from tests.conftest import tiny_config
from tfssl import jobs, restore
from tfssl.errors import ConfigError
from tfssl.losses import elbo
from tfssl.methods import ssvae
from tfssl.models.vae import M1M2, M2, MIN_VARIANCE, MLP, VAE
from tfssl.train import launch

RNG = np.random.default_rng(0)


# --- numpy, from the formulas ---
def np_softplus(x):
    return np.logaddexp(0.0, x)


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_kl(mean, log_var):
    return 0.5 * np.sum(mean**2 + np.exp(log_var) - 1.0 - log_var, -1)


def np_mlp(mlp, x, condition=None):
    """The MLP's forward pass from its weights: softplus between layers, the condition added in
    layer 1."""
    h = x
    for i, layer in enumerate(mlp.dense_layers):
        if i:
            h = np_softplus(h)
        h = h @ layer.kernel.numpy() + layer.bias.numpy()
        if i == 0 and condition is not None:
            h = h + condition @ mlp.condition_dense.kernel.numpy()
    return h


def np_log_px(likelihood, target, raw):
    if likelihood == "bernoulli":  # target is binary here: the Bernoulli pmf itself
        per_dim = stats.bernoulli.logpmf(target, np_sigmoid(raw))
    else:
        mean, raw_log_var = np.split(raw, 2, -1)
        std = np.sqrt(np.exp(raw_log_var) + MIN_VARIANCE)
        per_dim = stats.norm.logpdf(target, mean, std)
    return np.sum(per_dim, -1)


def np_labeled_bound(m2, x, target, y_onehot, eps):
    """-L(x,y) = log p(x|y,z) + log p(y) - KL(q(z|x,y) || N(0,I)), z = mu + sigma * eps."""
    mean, log_var = np.split(np_mlp(m2.encoder, x, y_onehot), 2, -1)
    z = mean + np.exp(0.5 * log_var) * eps
    raw = np_mlp(m2.decoder, z, y_onehot)
    return np_log_px(m2.likelihood, target, raw) - np.log(m2.num_classes) - np_kl(mean, log_var)


def np_unlabeled_bound(m2, x, target, eps):
    """-U(x) = sum_y q(y|x) (-L(x,y)) + H(q(y|x)), with eps[y] the noise for class y."""
    logits = np_mlp(m2.classifier, x)
    q = np.exp(logits - logits.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    eye = np.eye(m2.num_classes)
    bounds = np.stack(
        [
            np_labeled_bound(m2, x, target, np.tile(eye[y], (len(x), 1)), eps[y])
            for y in range(m2.num_classes)
        ],
        -1,
    )
    return np.sum(q * bounds, -1) - np.sum(q * np.log(q), -1)


def tiny_m2(likelihood):
    model = M2(input_dim=5, num_classes=3, latent_dim=2, hidden_sizes=[4], likelihood=likelihood)
    model(tf.zeros([1, 5]))
    for variable in model.trainable_variables:  # weights large enough to matter
        variable.assign(RNG.normal(0, 0.7, variable.shape).astype(np.float32))
    return model


# --- pure functions ---
def test_kl_and_log_likelihoods_match_scipy():
    mean, log_var = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))
    np.testing.assert_allclose(
        elbo.gaussian_kl_to_standard_normal(mean, log_var), np_kl(mean, log_var), rtol=1e-6
    )
    # KL by numerical integration for one 1-d Gaussian
    grid = np.linspace(-12, 12, 200001)
    q = stats.norm.pdf(grid, 0.7, np.exp(0.5 * -0.4))
    numeric = np.trapezoid(q * (np.log(q + 1e-300) - stats.norm.logpdf(grid)), grid)
    assert float(
        elbo.gaussian_kl_to_standard_normal(np.array([0.7]), np.array([-0.4]))
    ) == pytest.approx(numeric, 1e-5)

    x, logits = (RNG.uniform(size=(3, 6)) > 0.5).astype(np.float32), RNG.normal(0, 3, (3, 6))
    np.testing.assert_allclose(
        elbo.bernoulli_log_likelihood(x, logits),
        stats.bernoulli.logpmf(x, np_sigmoid(logits)).sum(-1),
        rtol=1e-5,
    )
    grey = RNG.uniform(size=(3, 6))
    expected = np.sum(
        grey * np.log(np_sigmoid(logits)) + (1 - grey) * np.log(1 - np_sigmoid(logits)), -1
    )
    np.testing.assert_allclose(elbo.bernoulli_log_likelihood(grey, logits), expected, rtol=1e-5)

    mean, log_var = RNG.normal(size=(3, 6)), RNG.normal(size=(3, 6))
    np.testing.assert_allclose(
        elbo.gaussian_log_likelihood(grey, mean, log_var),
        stats.norm.logpdf(grey, mean, np.exp(0.5 * log_var)).sum(-1),
        rtol=1e-5,
    )


def test_unlabeled_bound_is_the_expected_labeled_bound_plus_entropy():
    logits, bounds = RNG.normal(size=(4, 3)), RNG.normal(-50, 10, size=(4, 3))
    q = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = np.sum(q * bounds, -1) - np.sum(q * np.log(q), -1)
    np.testing.assert_allclose(elbo.unlabeled_bound(logits, bounds), expected, rtol=1e-5)
    # log p(x) >= -U(x): with q(y|x) = the posterior softmax(-L) the bound is exactly logsumexp(-L)
    exact = elbo.unlabeled_bound(bounds, bounds)
    np.testing.assert_allclose(exact, np.log(np.exp(bounds).sum(-1)), rtol=1e-5)
    assert np.all(elbo.unlabeled_bound(logits, bounds).numpy() <= exact.numpy() + 1e-4)


def test_semi_supervised_loss_scaling():
    labeled, unlabeled, nll = (
        np.array([-100.0, -120.0]),
        np.array([-90.0, -95.0, -80.0]),
        np.array([0.5, 1.5]),
    )
    # N_l = 100, N_u = 900: (100 * 110 + 900 * 88.33) / 1000 + 0.1 * 1.0
    expected = (100 * 110.0 + 900 * np.mean([90.0, 95.0, 80.0])) / 1000 + 0.1 * 1.0
    assert float(
        elbo.semi_supervised_loss(labeled, unlabeled, nll, 100, 900, 0.1)
    ) == pytest.approx(expected, 1e-6)


# --- the networks' bounds against numpy ---
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_m2_bounds_match_numpy(likelihood):
    model = tiny_m2(likelihood)
    x = RNG.uniform(size=(4, 5)).astype(np.float32)
    target = (RNG.uniform(size=(4, 5)) < x).astype(np.float32) if likelihood == "bernoulli" else x
    labels = np.array([0, 2, 1, 2])
    eps_l = RNG.normal(size=(4, 2)).astype(np.float32)
    eps_u = RNG.normal(size=(3, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(
        model.labeled_bound(x, target, labels, eps_l)["bound"],
        np_labeled_bound(model, x, target, np.eye(3)[labels], eps_l),
        rtol=1e-4,
    )
    unlabeled = model.unlabeled_bound(x, target, eps_u)
    np.testing.assert_allclose(
        unlabeled["bound"], np_unlabeled_bound(model, x, target, eps_u), rtol=1e-4
    )
    # the same bound as the explicit sum over classes of q(y|x) * labeled bound, plus the entropy
    q = tf.nn.softmax(model.classify(x)).numpy()
    per_class = np.stack(
        [model.labeled_bound(x, target, np.full(4, y), eps_u[y])["bound"] for y in range(3)], -1
    )
    np.testing.assert_allclose(
        unlabeled["bound"], np.sum(q * per_class, -1) - np.sum(q * np.log(q), -1), rtol=1e-4
    )


def test_m1_bound_matches_numpy():
    model = VAE(data_shape=[2, 3, 1], latent_dim=2, hidden_sizes=[4, 3])
    model(tf.zeros([1, 2, 3, 1]))
    for variable in model.trainable_variables:
        variable.assign(RNG.normal(0, 0.7, variable.shape).astype(np.float32))
    images = RNG.uniform(size=(4, 2, 3, 1)).astype(np.float32)
    target = (RNG.uniform(size=images.shape) < images).astype(np.float32)
    eps = RNG.normal(size=(4, 2)).astype(np.float32)
    mean, log_var = np.split(np_mlp(model.encoder, images.reshape(4, 6)), 2, -1)
    z = mean + np.exp(0.5 * log_var) * eps
    expected = np_log_px("bernoulli", target.reshape(4, 6), np_mlp(model.decoder, z)) - np_kl(
        mean, log_var
    )
    np.testing.assert_allclose(model.bound(images, target, eps)["bound"], expected, rtol=1e-4)


def test_get_config_round_trips():
    m1_config = dict(
        data_shape=[4, 4, 1],
        latent_dim=3,
        hidden_sizes=[5],
        activation="tanh",
        likelihood="gaussian",
    )
    m2_config = dict(num_classes=2, latent_dim=2, hidden_sizes=[4, 4], likelihood="gaussian")
    for obj in (
        MLP([3, 2], 5, "relu", condition_dim=4),
        VAE(**m1_config),
        M2(input_dim=3, **m2_config),
        M1M2(m1_config, m2_config),
        M1M2(m1_config, m2_config, active_units=[0, 2]),
    ):
        config = obj.get_config()
        assert type(obj).from_config(config).get_config() == config
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
        assert type(restored) is type(obj) and restored.get_config() == config
    assert M1M2(m1_config, m2_config).m1.trainable is False
    assert (
        M1M2(m1_config, m2_config).m2.input_dim == 3
        and M1M2(m1_config, m2_config, [2]).m2.input_dim == 1
    )


# --- real runs ---
@pytest.fixture(scope="module")
def runs(gray_folder, tmp_path_factory):
    """M1, then M2 and M1+M2 (on that M1), on the synthetic 16 px folder."""
    root = tmp_path_factory.mktemp("ssvae")
    common = dict(
        mode="ssvae",
        dataset=f"folder:{gray_folder}",
        ssvae_hidden_sizes="16",
        ssvae_latent_dim=4,
        eval_steps=1,
        steps_per_loop=2,
        learning_rate=3e-3,
    )
    results = {
        "m1": launch.train(tiny_config(ssvae_model="m1", model_dir=str(root / "m1"), **common))
    }
    for model in ("m2", "m1m2"):
        results[model] = launch.train(
            tiny_config(
                ssvae_model=model,
                num_labels=8,
                m1_checkpoint=str(root / "m1"),
                model_dir=str(root / model),
                unlabeled_batch_size=8,
                **common,
            )
        )
    return root, common, results


def test_m1_is_an_unsupervised_vae(runs):
    root, _, results = runs
    result = results["m1"]
    assert result["global_step"] == 4 and result["num_labeled_examples"] is None
    assert "top_1_accuracy" not in result["eval"]
    assert np.isfinite(result["train"]["elbo"]) and result["train"]["elbo"] < 0
    assert result["train"]["kl"] >= 0
    method = restore.load_trained(str(root / "m1"))[0]
    assert not method.has_classifier() and not method.uses_label_subset
    assert method.images_per_step == len(next(iter(method.train_dataset(None, 0)))[0])  # one stream
    assert set(method.export_outputs(tf.zeros([2, 16, 16, 1]))) == {"z_mean", "z_log_var"}
    assert np.isfinite(method.extra_eval_metrics("test", 8, 1)["elbo"])
    _assert_png(root / "m1" / ssvae.SAMPLES_FILE)


def test_m1_kl_warmup_weights_the_kl_by_step_over_warmup_steps(runs):
    """--ssvae_kl_warmup_epochs: loss = -(log p(x|z) - w KL), w = min(1, step / warmup steps); the
    reported elbo stays the unweighted bound."""
    root, _, _ = runs
    method = restore.load_trained(str(root / "m1"))[0]
    method.cfg = method.cfg.replace(ssvae_kl_warmup_epochs=2.0)
    warmup_steps = 2.0 * 64 / method.cfg.train_batch_size  # 64 train images in the folder
    batch = next(iter(method.train_dataset(None, 0)))
    for step, weight in ((0, 0.0), (3, 3 / warmup_steps), (10**6, 1.0)):
        method.step = tf.Variable(step, dtype=tf.int64)
        loss, metrics = method.loss(batch)
        assert float(metrics["kl_weight"]) == pytest.approx(weight)
        assert float(loss) == pytest.approx(
            -(float(metrics["log_px"]) - weight * float(metrics["kl"])), rel=1e-5
        )
        assert float(metrics["elbo"]) == pytest.approx(
            float(metrics["log_px"]) - float(metrics["kl"]), rel=1e-5
        )


def _assert_png(path):
    assert os.path.exists(path)
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


@pytest.mark.parametrize("model", ["m2", "m1m2"])
def test_m2_runs_evaluate_and_write_the_analogy_figure(runs, model):
    root, _, results = runs
    result = results[model]
    assert result["num_labeled_examples"] == 8 and result["global_step"] == 4
    assert 0 <= result["eval"]["top_1_accuracy"] <= 1 and np.isfinite(result["eval"]["elbo"])
    for name in ("elbo", "labeled_elbo", "classification_loss", "unlabeled_acc"):
        assert np.isfinite(result["train"][name]), name
    _assert_png(root / model / ssvae.FIGURE_FILE)


def test_m1m2_keeps_m1_frozen_and_exports_through_its_encoder(runs, tmp_path):
    root, _, _ = runs
    m1 = restore.load_trained(str(root / "m1"))[0].model
    method = restore.load_trained(str(root / "m1m2"))[0]
    assert json.load(open(root / "m1m2" / ssvae.M1_CONFIG_FILE))["m1"]["latent_dim"] == 4
    for trained, frozen in zip(method.model.m1.variables, m1.variables):
        np.testing.assert_array_equal(trained.numpy(), frozen.numpy())
    assert not any(v is w for v in method.trainable_variables() for w in method.model.m1.variables)
    images = tf.random.stateless_uniform([3, 16, 16, 1], [1, 2])
    features = tf.gather(m1.encode(images)[0], method.model.active_units, axis=-1)
    expected = method.model.m2.classify(features).numpy()  # q(y|x) at M1's mean
    np.testing.assert_allclose(method.eval_logits(images), expected, rtol=1e-5, atol=1e-6)
    export_dir = str(tmp_path / "export")
    jobs.run(tiny_config(mode="export", checkpoint=str(root / "m1m2"), export_dir=export_dir))
    loaded = tf.saved_model.load(export_dir)
    outputs = loaded.call_inference(images)
    np.testing.assert_allclose(outputs["logits"], expected, rtol=1e-5, atol=1e-6)
    assert {"z_mean", "m1_z_mean", "probabilities"} <= set(outputs)
    reloaded = keras.saving.load_model(export_dir + ".keras")
    np.testing.assert_allclose(reloaded(images)["logits"], expected, rtol=1e-5, atol=1e-6)


def test_m1m2_reads_only_the_active_units_of_m1():
    m1_config = dict(data_shape=[2, 2, 1], latent_dim=4, hidden_sizes=[5], likelihood="gaussian")
    model = M1M2(
        m1_config,
        dict(num_classes=3, latent_dim=2, hidden_sizes=[4], likelihood="gaussian"),
        [1, 3],
    )
    model(tf.zeros([1, 2, 2, 1]))
    assert model.m2.classifier.dense_layers[0].kernel.shape == (2, 4)
    images = RNG.uniform(size=(5, 2, 2, 1)).astype(np.float32)
    mean, log_var = np.split(np_mlp(model.m1.encoder, images.reshape(5, 4)), 2, -1)
    codes = model.codes(images)
    np.testing.assert_allclose(codes[0], mean[:, [1, 3]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(codes[1], log_var[:, [1, 3]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model(images)["logits"], np_mlp(model.m2.classifier, mean[:, [1, 3]]), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(model.full_code(tf.constant([[5.0, 7.0]])), [[0, 5, 0, 7]])


def test_m1m2_run_keeps_the_units_whose_mean_varies_over_the_train_images(runs, tmp_path):
    root, _, _ = runs
    method = restore.load_trained(str(root / "m1"))[0]
    means = np.concatenate(
        [
            method.model.encode(images)[0].numpy()
            for images, _ in method.data.eval_batches(method.eval_view, 64, "train")
        ]
    )
    expected = [unit for unit in range(4) if np.std(means[:, unit]) > 0.1] or [0, 1, 2, 3]
    assert json.load(open(root / "m1m2" / ssvae.M1_CONFIG_FILE))["active_units"] == expected
    assert restore.load_trained(str(root / "m1m2"))[0].model.m2.input_dim == len(expected)
    old_run = (
        tmp_path / "old_m1m2"
    )  # a run of the older tfssl kept M1's config alone, and masked units
    shutil.copytree(root / "m1m2", old_run)
    json.dump(
        json.load(open(old_run / ssvae.M1_CONFIG_FILE))["m1"],
        open(old_run / ssvae.M1_CONFIG_FILE, "w"),
    )
    with pytest.raises(ConfigError, match="older tfssl"):
        restore.load_trained(str(old_run))


def test_m1m2_trains_on_m1_codes_of_the_stream_images(runs):
    """The codes computed once before training are M1's q(z1|x) of the images each stream would have
    read."""
    root, _, _ = runs
    method = restore.load_trained(str(root / "m1m2"))[0]
    method.setup_training()
    active = method.model.active_units
    assert method.m1_codes.shape == (
        64,
        2 * len(active),
    )  # 64 train images, [mean, log variance] of each
    (codes_l, labels_l), (codes_u, labels_u) = next(iter(method.train_dataset(None, 3)))
    assert method.images_per_step == len(codes_l) + len(codes_u)
    streams = [
        ("labeled", method.cfg.train_batch_size, codes_l, labels_l),
        ("unlabeled", method.unlabeled_batch_size, codes_u, labels_u),
    ]
    for stream, (part, batch_size, codes, labels) in enumerate(streams):
        images, image_labels = next(
            iter(
                method.data.train_batches(
                    lambda image, seed: method.eval_view(image),
                    batch_size,
                    part,
                    start_step=3,
                    stream=stream,
                )
            )
        )
        np.testing.assert_array_equal(labels, image_labels)
        expected = np.concatenate(
            [t.numpy()[:, active] for t in method.model.m1.encode(images)], -1
        )
        np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    tf.random.set_seed(0)
    x, target = method.inputs(codes_u)  # a sample of q(z1|x), scored as the target
    np.testing.assert_array_equal(x, target)
    mean, log_var = np.split(codes_u.numpy(), 2, -1)
    assert (
        0.4 < np.mean(np.abs(x - mean) / np.exp(0.5 * log_var)) < 1.2
    )  # E|N(0, 1)| = 0.80, 32 draws
    method.cfg = method.cfg.replace(m1_latent="mean")  # --m1_latent=mean: M1's means, no sampling
    x, target = method.inputs(codes_u)
    np.testing.assert_array_equal(x, mean)
    np.testing.assert_array_equal(target, mean)


def test_labels_only_baseline_trains_only_the_classifier(runs):
    from tfssl.data.pipeline import DataBundle
    from tfssl.train.distribute import make_strategy
    from tfssl.train.trainer import Trainer

    root, common, _ = runs
    cfg = tiny_config(
        ssvae_model="m2",
        ssvae_labels_only=True,
        num_labels=8,
        model_dir=str(root / "labels"),
        **common,
    )
    trainer = Trainer(cfg, ssvae.SSVAE, DataBundle(cfg, cfg.run_dir), make_strategy("one_device"))
    model = trainer.method.model
    before = {v.path: v.numpy().copy() for v in model.variables}
    result = trainer.fit()
    assert result["num_labeled_examples"] == 8 and "top_1_accuracy" in result["eval"]
    assert result["epochs"] == pytest.approx(4 * 16 / 8)  # an epoch is one pass over the 8 labels
    for variable in model.variables:
        changed = not np.array_equal(before[variable.path], variable.numpy())
        assert changed == ("classifier" in variable.path and variable.trainable), variable.path


def test_m1_evaluates_and_exports_without_a_classifier(runs, tmp_path, capsys):
    root, _, results = runs
    assert results["m1"]["eval"]["elbo"] < 0  # the test ELBO is in the result
    result = jobs.run(tiny_config(mode="eval", checkpoint=str(root / "m1"), eval_steps=1))
    assert result["eval"]["elbo"] < 0 and "top_1_accuracy" not in result["eval"]
    export_dir = str(tmp_path / "m1_export")
    jobs.run(tiny_config(mode="export", checkpoint=str(root / "m1"), export_dir=export_dir))
    loaded = tf.saved_model.load(export_dir)
    outputs = loaded.serve(tf.zeros([2, 16, 16, 1], tf.uint8))
    assert set(outputs) == {"z_mean", "z_log_var"}
