"""Class weights, balanced sampling, label subsets that are too small, and decoding once."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from tests.conftest import class_pattern_images, tiny_config, write_image_folder
from tfssl.data import subsets
from tfssl.data.pipeline import DataBundle, balanced_class_weights
from tfssl.errors import ConfigError
from tfssl.losses.supervised import cross_entropy


@pytest.fixture()
def skewed_folder(tmp_path):
    """Three classes of 24, 6 and 2 images, sorted by class as a folder lists them."""
    parts = [class_pattern_images(num_classes=3, per_class=n, seed=n) for n in (24, 6, 2)]
    images = np.concatenate([p[0][p[1] == c] for c, p in enumerate(parts)])
    labels = np.repeat([0, 1, 2], [24, 6, 2])
    return write_image_folder(str(tmp_path / "skewed"), images, labels)


def test_balanced_weights_are_scikit_learns():
    labels = np.repeat([0, 1, 3], [40, 7, 3])
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 3]), y=labels)
    weights = balanced_class_weights(labels, 4)
    np.testing.assert_allclose(weights[[0, 1, 3]], expected)
    assert weights[2] == 0


def test_weighted_cross_entropy_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 2, 0, 1])
    weights = np.array([0.5, 2.0, 3.0], np.float32)
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = np.mean(-weights[labels] * log_softmax[np.arange(6), labels])
    assert float(cross_entropy(labels, logits, weights)) == pytest.approx(expected, rel=1e-5)
    unweighted = np.mean(-log_softmax[np.arange(6), labels])
    assert float(cross_entropy(labels, logits)) == pytest.approx(unweighted, rel=1e-5)


def test_bundle_weights_and_balanced_sampling(skewed_folder, tmp_path):
    cfg = tiny_config(
        dataset=f"folder:{skewed_folder}",
        eval_split="train",
        class_weight="balanced",
        balanced_sampling=True,
        seed=3,
    )
    bundle = DataBundle(cfg, str(tmp_path / "run"))
    expected = compute_class_weight("balanced", classes=np.arange(3), y=bundle.train_labels)
    np.testing.assert_allclose(bundle.class_weights("labeled"), expected, rtol=1e-6)

    def labels(start_step, steps):
        ds = bundle.train_batches(lambda image, seed: image, 8, "labeled", start_step=start_step)
        return np.concatenate([y.numpy() for _, y in ds.take(steps)])

    drawn = labels(0, 60)  # 480 draws from 24/6/2 images
    assert np.all(np.abs(np.bincount(drawn) / len(drawn) - 1 / 3) < 0.06)
    np.testing.assert_array_equal(drawn, labels(0, 60))  # deterministic
    np.testing.assert_array_equal(drawn[8 * 50 :], labels(50, 10))  # resumes mid-stream
    plain = DataBundle(cfg.replace(balanced_sampling=False), str(tmp_path / "run"))
    stream = plain.train_batches(lambda image, seed: image, 8, "labeled")
    natural = np.concatenate([y.numpy() for _, y in stream.take(60)])
    assert np.bincount(natural).tolist() == [360, 90, 30]  # without it: 15 plain epochs


def test_a_fraction_too_small_for_one_label_per_class_is_a_one_line_error():
    labels = np.repeat(np.arange(4), 50)  # 200 images, 4 classes
    with pytest.raises(ConfigError, match=r"--label_fraction=0\.005 .* at least 0\.02"):
        subsets.choose_labeled_indices(labels, 4, fraction=0.005)
    chosen = subsets.choose_labeled_indices(labels, 4, fraction=0.02)
    assert np.bincount(labels[chosen]).tolist() == [1, 1, 1, 1]


def test_decoded_once_no_file_is_read_after_the_first_pass(tmp_path):
    images, labels = class_pattern_images(num_classes=2, per_class=8)
    root = write_image_folder(str(tmp_path / "imgs"), images, labels)
    cfg = tiny_config(dataset=f"folder:{root}", eval_split="train[:50%]", image_size=12)
    cached = DataBundle(cfg.replace(cache_dir=str(tmp_path / "cache")), str(tmp_path / "a"))
    uncached = DataBundle(cfg.replace(cache_dataset=False), str(tmp_path / "b"))

    def stream(bundle, steps=6):  # 6 batches of 8 = 3 epochs
        ds = bundle.train_batches(lambda image, seed: image, 8)
        return [x.numpy() for x, _ in ds.take(steps)]

    first = stream(cached)
    for a, b in zip(first, stream(uncached)):  # the cache changes nothing in the stream
        np.testing.assert_array_equal(a, b)
    evaluated = [x.numpy() for x, _ in cached.eval_batches(lambda image: image, 4)]
    assert len(os.listdir(tmp_path / "cache")) == 2  # train and eval split, as .npy files
    shutil.rmtree(root)
    for a, b in zip(first, stream(cached)):
        np.testing.assert_array_equal(a, b)
    again = [x.numpy() for x, _ in cached.eval_batches(lambda image: image, 4)]
    np.testing.assert_array_equal(np.concatenate(evaluated), np.concatenate(again))
    with pytest.raises(tf.errors.NotFoundError):
        stream(uncached, 1)
