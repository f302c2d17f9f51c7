"""Offline tfds preparation, folder datasets, label subsets and the deterministic pipeline."""

import gzip
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import class_pattern_images, tiny_config, write_image_folder
from tfssl.data import offline, subsets
from tfssl.data.pipeline import DataBundle
from tfssl.data.sources import SourceOptions, load_source
from tfssl.data.sources.folder import FolderSource
from tfssl.errors import ConfigError, DataError


def test_offline_mnist_is_the_standard_tfds_dataset(mnist_data_dir):
    import tensorflow_datasets as tfds

    builder = tfds.builder("mnist", data_dir=mnist_data_dir)
    assert builder.is_prepared()
    assert builder.info.splits["train"].num_examples == 60000
    assert builder.info.splits["test"].num_examples == 10000
    assert builder.info.features["image"].shape == (28, 28, 1)
    assert builder.info.features["label"].num_classes == 10
    # the same 10,000 test images and labels as the package's arrays (tfds stores them in its own
    # order)
    ds = tfds.load("mnist", split="test", data_dir=mnist_data_dir, download=False).batch(10000)
    stored = next(iter(ds))
    images, labels = offline._mnist_arrays()["test"]

    def key(imgs, lbls):
        return sorted(hash((int(lbl), img.tobytes())) for img, lbl in zip(imgs, lbls))

    assert key(stored["image"].numpy()[..., 0], stored["label"].numpy()) == key(images, labels)


def test_tfds_labels_are_read_once_per_process(mnist_data_dir, monkeypatch):
    """A compare command opens the dataset once per run: a second source of the same split gives
    tfds' labels, in tfds' order, without reading the split again."""
    import tensorflow_datasets as tfds

    from tfssl.data.sources import tfds as tfds_module

    monkeypatch.setattr(tfds_module, "_LABELS", {})
    first = load_source("mnist", SourceOptions(data_dir=mnist_data_dir)).labels("test")
    ds = tfds.load("mnist", split="test", data_dir=mnist_data_dir, download=False).batch(10000)
    np.testing.assert_array_equal(first, next(iter(ds))["label"].numpy())
    second = load_source("mnist", SourceOptions(data_dir=mnist_data_dir))
    monkeypatch.setattr(second, "records", lambda split: pytest.fail("read the split again"))
    assert second.labels("test") is first and not first.flags.writeable


@pytest.mark.slow  # 35 s on 2 cores: it writes all 70,000 images
@pytest.mark.skipif(
    not os.path.isdir(offline.FASHION_MNIST_DIR), reason="dataset-fashion-mnist not installed"
)
def test_offline_fashion_mnist(tmp_path):
    import tensorflow_datasets as tfds

    assert offline.prepare("fashion_mnist", str(tmp_path))
    builder = tfds.builder("fashion_mnist", data_dir=str(tmp_path))
    assert builder.info.splits["train"].num_examples == 60000
    assert builder.info.splits["test"].num_examples == 10000


def test_a_second_preparation_waits_for_the_first_and_reuses_its_files(mnist_data_dir):
    import fcntl
    import threading

    import tensorflow_datasets as tfds

    data_dir = tfds.builder("mnist", data_dir=mnist_data_dir).data_dir
    mtimes = {f: os.stat(os.path.join(data_dir, f)).st_mtime_ns for f in os.listdir(data_dir)}
    result = []
    with open(offline.lock_path("mnist", mnist_data_dir), "a") as held:  # another process preparing
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(
            target=lambda: result.append(offline.prepare("mnist", mnist_data_dir))
        )
        waiter.start()
        waiter.join(timeout=2.0)
        assert waiter.is_alive() and not result  # blocked on the lock
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(timeout=60)
    assert result == [True]
    assert {
        f: os.stat(os.path.join(data_dir, f)).st_mtime_ns for f in os.listdir(data_dir)
    } == mtimes


def test_read_idx(tmp_path):
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in data.shape)
    path = str(tmp_path / "x-idx3-ubyte.gz")
    with gzip.open(path, "wb") as f:
        f.write(header + data.tobytes())
    np.testing.assert_array_equal(offline.read_idx(path), data)


def test_folder_dataset_with_splits(gray_folder):
    source = load_source(f"folder:{gray_folder}")
    assert source.info.num_classes == 4 and source.info.image_shape == (16, 16, 1)
    assert source.num_examples("train") == 64 and source.num_examples("test") == 24
    assert source.num_examples("train[:25%]") == 16
    images = [source.decode(r["encoded"]).numpy() for r in source.records("test").take(2)]
    assert images[0].shape == (16, 16, 1) and images[0].dtype == np.uint8


def test_folder_dataset_rgb_without_split_level(tmp_path):
    images, labels = class_pattern_images(num_classes=3, per_class=2, channels=3)
    write_image_folder(str(tmp_path), images, labels, class_names=["benign", "malignant", "normal"])
    source = FolderSource(str(tmp_path))
    assert source.info.class_names == ("benign", "malignant", "normal")
    assert source.info.image_shape == (16, 16, 3)
    assert list(source.labels("train")) == [0, 0, 1, 1, 2, 2]


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        FolderSource(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        FolderSource(str(empty))
    images, labels = class_pattern_images(num_classes=2, per_class=2)
    root = write_image_folder(str(tmp_path / "bad"), images, labels)
    (tmp_path / "bad" / "class2").mkdir()
    with pytest.raises(DataError, match="class2 holds no images"):
        FolderSource(root)
    os.rmdir(tmp_path / "bad" / "class2")
    corrupt = tmp_path / "bad" / "class1" / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match="broken.png"):
        FolderSource(root)
    assert FolderSource(root, SourceOptions(skip_corrupt_images=True)).num_examples("train") == 4
    corrupt.unlink()
    rgb, _ = class_pattern_images(num_classes=1, per_class=1, channels=3)
    write_image_folder(str(tmp_path / "bad"), rgb, [0])
    with pytest.raises(DataError, match="mixes grayscale"):
        FolderSource(root)


def test_unknown_dataset_and_split():
    with pytest.raises(DataError, match="unknown dataset"):
        load_source("no_such_dataset_xyz")


def test_label_subset_one_percent_of_mnist_labels():
    labels = np.repeat(np.arange(10), 6000)
    chosen = subsets.choose_labeled_indices(labels, 10, fraction=0.01, seed=0)
    assert len(chosen) == 600
    assert np.all(np.bincount(labels[chosen]) == 60)
    np.testing.assert_array_equal(
        chosen, subsets.choose_labeled_indices(labels, 10, fraction=0.01, seed=0)
    )
    assert not np.array_equal(
        chosen, subsets.choose_labeled_indices(labels, 10, fraction=0.01, seed=1)
    )
    hundred = subsets.choose_labeled_indices(labels, 10, num_labels=100, seed=0)
    assert np.all(np.bincount(labels[hundred]) == 10)
    assert len(subsets.choose_labeled_indices(labels, 10, fraction=1.0)) == 60000


def test_label_subset_errors():
    labels = np.repeat(np.arange(10), 5)
    with pytest.raises(ConfigError, match="not divisible"):
        subsets.choose_labeled_indices(labels, 10, num_labels=15)
    with pytest.raises(ConfigError, match="larger than"):
        subsets.choose_labeled_indices(labels, 10, num_labels=60)
    unbalanced = np.concatenate([[0, 0], np.repeat(np.arange(1, 10), 5)])
    with pytest.raises(ConfigError, match="class 0 has only 2"):
        subsets.choose_labeled_indices(unbalanced, 10, num_labels=30)


def test_label_subset_is_saved_and_reused(gray_folder, tmp_path):
    source = load_source(f"folder:{gray_folder}")
    first = subsets.labeled_subset(source, "train", 0.25, 0, 3, str(tmp_path / "a"))
    again = subsets.labeled_subset(source, "train", 0.25, 0, 3, str(tmp_path / "a"))
    np.testing.assert_array_equal(first, again)
    shared = subsets.labeled_subset(
        source,
        "train",
        0.5,
        0,
        9,
        str(tmp_path / "b"),
        subset_file=str(tmp_path / "a" / subsets.SUBSET_FILE),
    )
    np.testing.assert_array_equal(first, shared)
    with pytest.raises(ConfigError, match="other labels"):
        subsets.labeled_subset(source, "train", 0.5, 0, 3, str(tmp_path / "a"))


def identity_view(image, seed):
    return image


def batches(bundle, n, **kwargs):
    ds = bundle.train_batches(identity_view, 8, **kwargs)
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def test_pipeline_is_deterministic_and_resumes_mid_stream(gray_folder, tmp_path):
    cfg = tiny_config(dataset=f"folder:{gray_folder}", seed=4)
    bundle = DataBundle(cfg, str(tmp_path))
    first, second = batches(bundle, 12), batches(bundle, 12)
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    resumed = batches(bundle, 4, start_step=8)
    for (x1, _), (x2, _) in zip(first[8:], resumed):
        np.testing.assert_array_equal(x1, x2)
    epoch = np.concatenate([y for _, y in first[:8]])  # 64 examples: one epoch, each once
    assert sorted(np.bincount(epoch)) == [16, 16, 16, 16]
    other_seed = DataBundle(cfg.replace(seed=5), str(tmp_path))
    assert not np.array_equal(batches(other_seed, 1)[0][1], first[0][1])


def test_labeled_and_unlabeled_parts(gray_folder, tmp_path):
    cfg = tiny_config(dataset=f"folder:{gray_folder}", num_labels=8)
    bundle = DataBundle(cfg, str(tmp_path))
    assert bundle.num_examples("labeled") == 8 and bundle.num_examples("unlabeled") == 56
    labeled = np.concatenate([y for _, y in batches(bundle, 4, part="labeled")])
    assert sorted(np.bincount(labeled)) == [8, 8, 8, 8]  # 4 epochs of 2 per class


def test_all_known_part_labels_only_the_fitted_subset(gray_folder, tmp_path):
    """part="all_known": every train image once an epoch, with its label when it is in the
    labeled part and -1 otherwise (the held-out validation labels included)."""
    cfg = tiny_config(
        dataset=f"folder:{gray_folder}",
        num_labels=16,
        labeled_val_fraction=0.25,
        val_split="labeled_val",
    )
    bundle = DataBundle(cfg, str(tmp_path))
    row_ids = np.arange(64, dtype=np.float32)[:, None]
    seen = batches(bundle, 8, part="all_known", features=row_ids)
    ids = np.concatenate([x[:, 0] for x, _ in seen]).astype(int)
    labels = np.concatenate([y for _, y in seen])
    assert sorted(ids) == list(range(64))
    with open(tmp_path / subsets.SUBSET_FILE) as f:
        saved = json.load(f)
    fitted = set(saved["indices"]) - set(saved["val_indices"])
    assert len(fitted) == 12 and len(saved["val_indices"]) == 4
    true = np.asarray(bundle.source.labels("train"))
    for i, label in zip(ids, labels):
        assert label == (true[i] if i in fitted else -1)


def test_precomputed_features_follow_their_examples_through_the_stream(gray_folder, tmp_path):
    """Rows of `features` (one per train example, in split order) take the place of the images."""
    cfg = tiny_config(dataset=f"folder:{gray_folder}", num_labels=8, seed=2)
    bundle = DataBundle(cfg, str(tmp_path))
    in_split_order = np.concatenate(
        [x.numpy() for x, _ in bundle.eval_batches(lambda image: image, 64, "train")]
    )
    for part in ("labeled", "unlabeled"):
        from_images = batches(bundle, 9, part=part, start_step=2)
        from_rows = batches(bundle, 9, part=part, start_step=2, features=in_split_order)
        for (x1, y1), (x2, y2) in zip(from_images, from_rows):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)
    with pytest.raises(ValueError, match="rows"):
        bundle.train_batches(identity_view, 8, features=in_split_order[:5])


def test_sharded_input_pipelines_cover_the_same_global_batch(gray_folder, tmp_path):
    cfg = tiny_config(dataset=f"folder:{gray_folder}")
    bundle = DataBundle(cfg, str(tmp_path))
    whole = bundle.train_batches(identity_view, 8)
    x_whole = next(iter(whole))[0].numpy()
    shards = [
        bundle.train_batches(identity_view, 8, input_context=tf.distribute.InputContext(2, i, 2))
        for i in range(2)
    ]
    x_shards = np.concatenate([next(iter(s))[0].numpy() for s in shards])
    assert sorted(map(bytes, x_whole.reshape(8, -1))) == sorted(map(bytes, x_shards.reshape(8, -1)))
