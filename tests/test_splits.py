"""Split slices: stratified, seeded, disjoint and covering, on any source."""

import numpy as np
import pytest

from tests.conftest import class_pattern_images, write_image_folder
from tfssl.data.sources import load_source
from tfssl.data.splits import parse_split, quota_counts, slice_indices
from tfssl.errors import DataError

# An imbalanced split sorted by class, as a folder lists it: 50, 13 and 7 images.
LABELS = np.repeat([0, 1, 2], [50, 13, 7])
COUNTS = np.array([50, 13, 7])


def per_class(indices):
    return np.bincount(LABELS[indices], minlength=3)


@pytest.mark.parametrize("cut", [80, 90, 33, 7])
def test_percent_slices_keep_each_class_share_never_overlap_and_cover(cut):
    head = slice_indices(LABELS, f"train[:{cut}%]", seed=3)
    tail = slice_indices(LABELS, f"train[{cut}%:]", seed=3)
    assert not set(head) & set(tail)
    assert sorted(np.concatenate([head, tail])) == list(range(len(LABELS)))
    assert np.all(np.abs(per_class(head) - COUNTS * cut / 100) <= 0.5 + 1e-9)
    assert np.all(np.abs(per_class(tail) - COUNTS * (100 - cut) / 100) <= 0.5 + 1e-9)
    middle = slice_indices(LABELS, f"train[{cut // 2}%:{cut}%]", seed=3)
    assert set(middle) <= set(head)
    assert np.all(np.abs(per_class(middle) - COUNTS * (cut - cut // 2) / 100) <= 1)


def test_count_slices_are_exact_nested_and_stratified():
    previous = set()
    for k in range(0, len(LABELS) + 1):
        head = slice_indices(LABELS, f"train[:{k}]", seed=0)
        tail = slice_indices(LABELS, f"train[{k}:]", seed=0)
        assert len(head) == k and not set(head) & set(tail)
        assert len(head) + len(tail) == len(LABELS)
        assert previous <= set(head)  # [:k] grows by one image as k does
        assert np.all(np.abs(per_class(head) - k * COUNTS / len(LABELS)) < 1)
        previous = set(head)
    np.testing.assert_array_equal(
        slice_indices(LABELS, "train[-10:]"), slice_indices(LABELS, "train[60:]")
    )


def test_quota_method_stays_within_one_of_each_share_on_skewed_classes():
    rng = np.random.default_rng(1)
    counts = np.minimum(rng.pareto(1.0, 12) * 20 + 1, 400).astype(int)
    for k in np.linspace(0, counts.sum(), 25).astype(int):
        given = quota_counts(counts, k)
        assert given.sum() == k
        assert np.all(np.abs(given - k * counts / counts.sum()) < 1)


def test_the_seed_picks_the_order_and_the_same_seed_the_same_images():
    a = slice_indices(LABELS, "train[:50%]", seed=0)
    np.testing.assert_array_equal(a, slice_indices(LABELS, "train[:50%]", seed=0))
    assert not np.array_equal(a, slice_indices(LABELS, "train[:50%]", seed=1))


def test_parse_split():
    assert parse_split("train[10%:50%]") == ("train", 10, 50, True)
    assert parse_split("train[:100]") == ("train", None, 100, False)
    assert parse_split("test") == ("test", None, None, False)
    with pytest.raises(DataError, match="mixes a percentage and a count"):
        parse_split("train[10%:500]")
    with pytest.raises(DataError, match="cannot read split"):
        parse_split("train[1:2:3]")


def test_folder_sorted_by_class_gets_every_class_in_its_held_out_slice(tmp_path):
    """The bug of the issue: a folder lists class by class, so train[80%:] held one class only."""
    images, labels = class_pattern_images(num_classes=2, per_class=20)
    root = write_image_folder(str(tmp_path), images, labels, class_names=["normal", "pneumonia"])
    source = load_source(f"folder:{root}")
    held_out = source.labels("train[80%:]")
    assert np.bincount(held_out).tolist() == [4, 4]
    # records and labels of a slice agree, in split order
    from_records = [int(r["label"]) for r in source.records("train[80%:]")]
    assert from_records == held_out.tolist()
    assert source.num_examples("train[:80%]") == 32
    with pytest.raises(DataError, match=r"train\[:80%\]"):
        source.num_examples("test")


def test_tfds_slices_are_cut_by_the_same_function(mnist_data_dir):
    from tfssl.data.sources import SourceOptions

    source = load_source("mnist", SourceOptions(data_dir=mnist_data_dir, split_seed=2))
    labels = source.source.labels("test")
    expected = slice_indices(labels, "test[:1%]", seed=2)
    np.testing.assert_array_equal(source.labels("test[:1%]"), labels[expected])
    assert source.num_examples("test[:1%]") == len(expected)


def test_a_label_subset_of_a_slice_is_tied_to_its_split_seed(tmp_path):
    from tfssl.data import subsets
    from tfssl.data.sources import SourceOptions

    images, labels = class_pattern_images(num_classes=2, per_class=8)
    root = write_image_folder(str(tmp_path / "imgs"), images, labels)
    run_dir = str(tmp_path / "run")
    first = load_source(f"folder:{root}", SourceOptions(split_seed=0))
    chosen = subsets.labeled_subset(first, "train[:50%]", 0.5, 0, 0, run_dir)
    again = subsets.labeled_subset(first, "train[:50%]", 0.5, 0, 0, run_dir)
    np.testing.assert_array_equal(chosen, again)
    other = load_source(f"folder:{root}", SourceOptions(split_seed=1))
    with pytest.raises(DataError, match="split_seed=0, not stratified, split_seed=1"):
        subsets.labeled_subset(other, "train[:50%]", 0.5, 0, 0, run_dir)
