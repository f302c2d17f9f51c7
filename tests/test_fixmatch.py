"""FixMatch: the loss against numpy (threshold mask, the 1 / (mu B) and lambda weights, no gradient
through the pseudo-label, distribution alignment), the EMA of every weight, the 7 pi / 16 cosine,
the views, and real steps on gray_folder that evaluate, restore and export."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_config
from tfssl import restore
from tfssl.data.pipeline import DataBundle
from tfssl.errors import ConfigError
from tfssl.export import export_saved_model
from tfssl.losses import pseudo_label
from tfssl.methods.fixmatch import FixMatch
from tfssl.train import runtime
from tfssl.train.distribute import make_strategy
from tfssl.train.optim import FixMatchCosineDecay
from tfssl.train.trainer import Trainer


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_ce(labels, logits):
    return -np.log(softmax(logits))[np.arange(len(labels)), labels]


def fm_config(folder, run_dir, **overrides):
    values = dict(
        mode="fixmatch",
        dataset=f"folder:{folder}",
        model_dir=str(run_dir),
        num_labels=16,
        train_batch_size=4,
        unlabeled_ratio=2,
        width_multiplier=0.125,
        eval_steps=1,
    )
    values.update(overrides)
    return tiny_config(**values)


# --- the loss, as a pure function ---
# 3 classes. Unlabeled rows: max probabilities about 0.97 (kept), 0.83 (dropped), 0.9526 (kept at
# tau = 0.95), 0.9474 (dropped), 0.998 (kept).
WEAK = np.array(
    [[4.0, 0.0, 0.5], [0.0, 2.0, 0.0], [0.0, 0.0, 3.7], [3.6, 0.0, 0.0], [0.0, 7.0, 0.8]],
    np.float32,
)
STRONG = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
LABELED = np.random.default_rng(1).normal(size=(2, 3)).astype(np.float32)
LABELS = np.array([2, 0])


def test_threshold_mask_keeps_probabilities_at_or_above_tau():
    labels, mask, probs = pseudo_label.pseudo_labels(tf.constant(WEAK), 0.95)
    expected = softmax(WEAK)
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    assert expected.max(-1)[2] > 0.95 > expected.max(-1)[3]  # the rows either side of tau
    np.testing.assert_array_equal(mask, [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(labels, [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(pseudo_label.pseudo_labels(tf.constant(WEAK), 0.0)[1], np.ones(5))


@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_loss_weights_the_unlabeled_mean_by_lambda_over_all_mu_b_images(weight):
    loss, parts = pseudo_label.fixmatch_loss(LABELS, LABELED, WEAK, STRONG, 0.95, weight)
    mask = np.array([1, 0, 1, 0, 1])
    unlabeled = np.sum(mask * np_ce(softmax(WEAK).argmax(-1), STRONG)) / 5  # mu B = 5 images
    expected = np_ce(LABELS, LABELED).mean() + weight * unlabeled
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(parts["unlabeled_loss"]) == pytest.approx(unlabeled, rel=1e-5)
    # twice the unlabeled images (mu doubled), the new ones all below tau: the term halves
    doubled = pseudo_label.fixmatch_loss(
        LABELS,
        LABELED,
        np.concatenate([WEAK, np.zeros_like(WEAK)]),
        np.tile(STRONG, (2, 1)),
        0.95,
        1.0,
    )[1]["unlabeled_loss"]
    assert float(doubled) == pytest.approx(unlabeled / 2, rel=1e-5)


def test_no_gradient_flows_through_the_pseudo_label():
    weak, strong = tf.Variable(WEAK), tf.Variable(STRONG)
    with tf.GradientTape() as tape:
        loss, _ = pseudo_label.fixmatch_loss(LABELS, LABELED, weak, strong, 0.95, 2.0)
    grad_weak, grad_strong = tape.gradient(loss, [weak, strong])
    assert grad_weak is None
    targets = np.eye(3)[softmax(WEAK).argmax(-1)]
    expected = 2.0 / 5 * np.array([1, 0, 1, 0, 1])[:, None] * (softmax(STRONG) - targets)
    np.testing.assert_allclose(grad_strong.numpy(), expected, atol=1e-6)


def test_distribution_alignment_scales_then_renormalises_before_the_threshold():
    ratio = np.array([0.5, 1.0, 2.0], np.float32)  # p(y) / p~(y)
    labels, mask, probs = pseudo_label.pseudo_labels(tf.constant(WEAK), 0.95, ratio)
    aligned = softmax(WEAK) * ratio
    aligned /= aligned.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, aligned, rtol=1e-5)
    np.testing.assert_array_equal(mask, aligned.max(-1) >= 0.95)
    np.testing.assert_array_equal(labels, aligned.argmax(-1))
    average = pseudo_label.running_mean(tf.constant([0.2, 0.3, 0.5]), probs, 0.9)
    np.testing.assert_allclose(average, 0.9 * np.array([0.2, 0.3, 0.5]) + 0.1 * aligned.mean(0))


def test_fixmatch_cosine_is_lr0_cos_7_pi_k_over_16_k():
    schedule = FixMatchCosineDecay(0.03, 0, 1000)
    for step in (0, 250, 999, 1000, 5000):
        expected = 0.03 * np.cos(7 * np.pi * min(step, 1000) / (16 * 1000))
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)
    warm = FixMatchCosineDecay(0.03, 100, 1100)
    assert float(warm(50)) == pytest.approx(0.015)
    assert float(warm(600)) == pytest.approx(0.03 * np.cos(7 * np.pi / 32), rel=1e-5)


# --- the method, eagerly ---
@pytest.fixture(scope="module")
def built(gray_folder, tmp_path_factory):
    cfg = fm_config(gray_folder, tmp_path_factory.mktemp("built"), distribution_alignment=True)
    runtime.setup_runtime(cfg)
    method = FixMatch(cfg, DataBundle(cfg, cfg.run_dir))
    method.build()
    method.step = tf.Variable(0, dtype=tf.int64)
    return method


def test_after_update_is_the_ema_of_every_weight_batch_norm_statistics_too(built):
    method, rng = built, np.random.default_rng(2)
    for variable in method.model.variables + method.student.variables:
        variable.assign(rng.normal(size=variable.shape).astype(np.float32))
    ema = [v.numpy() for v in method.model.variables]
    student = [v.numpy() for v in method.student.variables]
    assert any("moving_mean" in v.path for v in method.model.variables)
    for step, decay in ((0, 0.5), (3, 0.8), (5000, 0.999)):  # min(1 - 1 / (step + 2), 0.999)
        method.step.assign(step)
        method.after_update()
        ema = [decay * e + (1 - decay) * s for e, s in zip(ema, student)]
        for variable, value in zip(method.model.variables, ema):
            np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5, atol=1e-6)
    for variable, value in zip(method.student.variables, student):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_loss_matches_numpy_and_never_reads_the_unlabeled_labels(built):
    """One forward pass over labeled + weak + strong (batch norm sees them together), the aligned
    pseudo-labels of the weak views, and true labels of the unlabeled images left out."""
    method = built
    batch = next(iter(method.train_dataset(None, 0)))
    (images, labels), ((weak, strong), truth) = batch
    assert images.shape[0] == 4 and weak.shape[0] == strong.shape[0] == 8  # mu = 2
    assert method.images_per_step == 4 + 8
    method.prediction_mean.assign([0.4, 0.2, 0.2, 0.2])
    loss, metrics = method.loss(batch)
    logits = method.student(tf.concat([images, weak, strong], 0), training=True)["logits"].numpy()
    p_weak = softmax(logits[4:12])
    average = 0.999 * np.array([0.4, 0.2, 0.2, 0.2]) + 0.001 * p_weak.mean(0)
    np.testing.assert_allclose(method.prediction_mean.numpy(), average, rtol=1e-5)
    aligned = p_weak * (np.full(4, 0.25) / average)  # gray_folder's labels are balanced
    aligned /= aligned.sum(-1, keepdims=True)
    mask = aligned.max(-1) >= 0.95
    unlabeled = np.sum(mask * np_ce(aligned.argmax(-1), logits[12:])) / 8
    expected = np_ce(labels.numpy(), logits[:4]).mean() + unlabeled
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    assert float(metrics["mask_rate"]) == pytest.approx(mask.mean())
    method.prediction_mean.assign([0.4, 0.2, 0.2, 0.2])
    wrong = (truth + 1) % 4
    loss_2, metrics_2 = method.loss(((images, labels), ((weak, strong), wrong)))
    assert float(loss_2) == pytest.approx(float(loss), rel=1e-6)
    assert float(metrics_2["unlabeled_acc"]) == pytest.approx(
        np.mean(aligned.argmax(-1) == wrong.numpy())
    )


def test_views_weak_is_a_shift_strong_adds_randaugment_and_cutout(built):
    method = built
    assert method.translate_pixels == 2  # 12.5% of 16 px
    image = tf.constant(np.random.default_rng(3).uniform(size=(16, 16, 1)), tf.float32)
    weak, strong = method.weak_and_strong_views(image, tf.constant([1, 2], tf.int64))
    assert weak.shape == strong.shape == (16, 16, 1)
    assert np.sum(np.all(strong.numpy() == 0.5, -1)) >= 16  # an 8 x 8 Cutout, maybe clipped
    shifts = [
        np.roll(np.pad(image.numpy(), [(2, 2), (2, 2), (0, 0)], mode="reflect"), (dy, dx), (0, 1))[
            2:-2, 2:-2
        ]
        for dy in range(-2, 3)
        for dx in range(-2, 3)
    ]
    assert any(np.allclose(weak, shift) for shift in shifts)


def test_zero_unlabeled_weight_is_the_supervised_baseline(gray_folder, tmp_path):
    cfg = fm_config(gray_folder, tmp_path, unlabeled_loss_weight=0.0)
    method = FixMatch(cfg, DataBundle(cfg, cfg.run_dir))
    method.build()
    method.step = tf.Variable(0, dtype=tf.int64)
    batch = next(iter(method.train_dataset(None, 0)))
    assert len(batch) == 1 and method.images_per_step == 4
    loss, metrics = method.loss(batch)
    assert float(loss) == pytest.approx(float(metrics["supervised_loss"]))


# --- real training ---
def test_training_on_2_replicas_reports_diagnostics_and_exports_the_ema(gray_folder, tmp_path):
    cfg = fm_config(
        gray_folder,
        tmp_path,
        train_steps=2,
        steps_per_loop=1,
        checkpoint_steps=1,
        distribution_alignment=True,
    )
    runtime.setup_runtime(cfg)
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    trainer = Trainer(cfg, FixMatch, DataBundle(cfg, cfg.run_dir), strategy)
    first = trainer.fit()
    mirrored = [v.value for v in trainer.method.model.variables] + [trainer.method.prediction_mean]
    for variable in mirrored:
        copies = [v.numpy() for v in strategy.experimental_local_results(variable)]
        np.testing.assert_array_equal(copies[0], copies[1], err_msg=variable.name)
    assert float(tf.reduce_sum(trainer.method.prediction_mean)) == pytest.approx(1.0, rel=1e-5)
    assert not np.allclose(trainer.method.prediction_mean.numpy(), 0.25)  # it moved
    for name in ("supervised_loss", "unlabeled_loss", "mask_rate", "pseudo_label_acc", "ema_decay"):
        assert np.isfinite(first["train"][name]), name
    # the last loop's step: step 1 of K = 2
    assert first["train"]["learning_rate"] == pytest.approx(0.03 * np.cos(7 * np.pi / 32), rel=1e-5)
    assert {"top_1_accuracy", "student_top_1_accuracy"} <= set(first["eval"])
    method = restore.load_trained(str(tmp_path))[0]  # every checkpoint item, the EMA included
    for ema_var, saved in zip(trainer.method.model.variables, method.model.variables):
        np.testing.assert_array_equal(ema_var.numpy(), saved.numpy())
    export_dir = export_saved_model(method, str(tmp_path / "saved_model"))
    loaded = tf.saved_model.load(export_dir)
    images = tf.random.uniform([2, 16, 16, 1])
    np.testing.assert_allclose(
        loaded.call_inference(images)["logits"], method.eval_logits(images), atol=1e-4
    )


# --- FreeMatch's self-adaptive thresholds ---
def test_a_threshold_per_class_applies_to_the_predicted_class():
    # Predicted classes 0, 1, 2, 0, 1 with max probabilities as in WEAK.
    thresholds = np.array([0.98, 0.5, 0.9], np.float32)
    labels, mask, probs = pseudo_label.pseudo_labels(tf.constant(WEAK), thresholds)
    p = softmax(WEAK)
    np.testing.assert_array_equal(labels, p.argmax(-1))
    np.testing.assert_array_equal(mask, p.max(-1) >= thresholds[p.argmax(-1)])
    np.testing.assert_array_equal(mask, [0, 1, 1, 0, 1])  # 0.97 < 0.98; 0.83 >= 0.5; ...


def test_self_adaptive_thresholds_follow_freematch_by_hand():
    """Two batches through the running means from 1/C, then p~(c) / max p~ * tau."""
    confidence, shares = tf.constant(1 / 3), tf.constant([1 / 3] * 3)
    tau, p_tilde = 1 / 3, np.full(3, 1 / 3)
    for batch in (WEAK, WEAK[::-1] * 2):
        p = softmax(batch)
        confidence = pseudo_label.running_mean(confidence, tf.reduce_max(p, -1), 0.9)
        shares = pseudo_label.running_mean(shares, tf.constant(p, tf.float32), 0.9)
        tau = 0.9 * tau + 0.1 * p.max(-1).mean()
        p_tilde = 0.9 * p_tilde + 0.1 * p.mean(0)
    thresholds = pseudo_label.self_adaptive_thresholds(confidence, shares).numpy()
    np.testing.assert_allclose(thresholds, p_tilde / p_tilde.max() * tau, rtol=1e-5)
    assert thresholds.max() == pytest.approx(tau, rel=1e-5)  # the most predicted class gets tau


def test_loss_with_self_adaptive_thresholds_matches_numpy(gray_folder, tmp_path):
    cfg = fm_config(gray_folder, tmp_path, self_adaptive_threshold=True)
    runtime.setup_runtime(cfg)
    method = FixMatch(cfg, DataBundle(cfg, cfg.run_dir))
    method.build()
    method.step = tf.Variable(0, dtype=tf.int64)
    np.testing.assert_allclose(method.class_shares.numpy(), np.full(4, 0.25))
    assert float(method.confidence) == pytest.approx(0.25)
    batch = next(iter(method.train_dataset(None, 0)))
    (images, labels), ((weak, strong), _) = batch
    method.confidence.assign(0.6)
    method.class_shares.assign([0.4, 0.3, 0.2, 0.1])
    loss, metrics = method.loss(batch)
    logits = method.student(tf.concat([images, weak, strong], 0), training=True)["logits"].numpy()
    p_weak = softmax(logits[4:12])
    tau = 0.999 * 0.6 + 0.001 * p_weak.max(-1).mean()
    p_tilde = 0.999 * np.array([0.4, 0.3, 0.2, 0.1]) + 0.001 * p_weak.mean(0)
    thresholds = p_tilde / p_tilde.max() * tau
    mask = p_weak.max(-1) >= thresholds[p_weak.argmax(-1)]
    assert mask.any() and not (p_weak.max(-1) >= 0.95).any()  # kept only by lowered thresholds
    unlabeled = np.sum(mask * np_ce(p_weak.argmax(-1), logits[12:])) / 8
    expected = np_ce(labels.numpy(), logits[:4]).mean() + unlabeled
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    assert float(metrics["mask_rate"]) == pytest.approx(mask.mean())
    assert float(metrics["threshold"]) == pytest.approx(tau, rel=1e-5)
    assert float(metrics["lowest_threshold"]) == pytest.approx(thresholds.min(), rel=1e-5)


def test_a_fixed_threshold_beside_self_adaptive_ones_is_a_one_line_error(gray_folder, tmp_path):
    fm_config(gray_folder, tmp_path, self_adaptive_threshold=True)  # the default 0.95 is fine
    with pytest.raises(ConfigError, match="drop --confidence_threshold"):
        fm_config(gray_folder, tmp_path, self_adaptive_threshold=True, confidence_threshold=0.9)
