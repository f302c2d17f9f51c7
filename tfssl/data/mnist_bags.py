"""MNIST-bags (Ilse, Tomczak & Welling 2018, section 5.2): bags of digits, positive when they hold
the target digit.

Each bag's size is drawn from N(mean, std), rounded to the nearest integer and clipped to >= 1.
With positive_fraction f > 0 (the authors' loader balances the classes: f = 0.5), exactly
round(f * num_bags) bags, at seeded random places, are positive: their digits are drawn uniformly
from the whole split, redrawn until at least one is the target (a random bag conditioned on
holding one); the other bags draw only non-target digits. With f = 0 every bag draws uniformly
from the whole split and is positive when it happens to hold a target. The sizes of positive and
negative bags follow the same distribution (the authors' loader, which redraws the size as well,
favours larger positive bags slightly, and truncates the size instead of rounding it).

Training bags come from the digits' train split, seeded by --seed; test bags from their test
split, always with the same seed (TEST_SEED), so every run is scored on the same test bags.
"""

import functools

import numpy as np

from tfssl.data.bags import Bags
from tfssl.data.sources import DatasetInfo, SourceOptions
from tfssl.errors import DataError

TEST_SEED = 20180213  # the paper's arXiv date: fixed test bags for every run


def generate_bags(digit_labels, num_bags, target, mean, std, positive_fraction, seed):
    """(instance indices into digit_labels, row_splits, bag labels, instance labels) of num_bags
    bags. Instance labels are 1 for a target digit, else 0; a bag's label is their maximum."""
    digit_labels = np.asarray(digit_labels)
    is_target = digit_labels == target
    if not is_target.any() or is_target.all():
        raise DataError(f"--mil_target={target} must be one of the digits, and not the only one")
    rng = np.random.default_rng(seed)
    sizes = np.maximum(np.rint(rng.normal(mean, std, num_bags)), 1).astype(np.int64)
    others = np.flatnonzero(~is_target)
    positive = np.zeros(num_bags, bool)
    positive[rng.permutation(num_bags)[: int(round(positive_fraction * num_bags))]] = True
    members = []
    for size, is_positive in zip(sizes, positive):
        if positive_fraction == 0:
            indices = rng.integers(0, len(digit_labels), size)
        elif is_positive:
            indices = rng.integers(0, len(digit_labels), size)
            while not is_target[indices].any():
                indices = rng.integers(0, len(digit_labels), size)
        else:
            indices = others[rng.integers(0, len(others), size)]
        members.append(indices)
    indices = np.concatenate(members)
    row_splits = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    instance_labels = is_target[indices].astype(np.int64)
    bag_labels = np.maximum.reduceat(instance_labels, row_splits[:-1])
    return indices, row_splits, bag_labels, instance_labels


@functools.lru_cache(maxsize=4)
def _digits(name, data_dir, split):
    """(uint8 images, labels) of a whole tfds split, read once per process."""
    from tfssl.data.sources.tfds import TfdsSource

    source = TfdsSource(name, SourceOptions(data_dir))
    source.num_examples(split)
    arrays = source.builder.as_dataset(split=split, batch_size=-1, shuffle_files=False)
    return arrays["image"].numpy(), arrays["label"].numpy()


class MnistBagsSource:
    """--dataset=mnist_bags (or mnist_bags:<tfds name> for bags of another digit-like dataset)."""

    def __init__(self, spec, options):
        self.name = spec or "mnist"
        self.options = options
        sizes = {"train": options.train_bags, "test": options.test_bags}
        self.info = DatasetInfo(
            name=f"mnist_bags:{self.name}",
            num_classes=2,
            image_shape=(28, 28, 1) if self.name in ("mnist", "fashion_mnist") else (None,) * 3,
            split_sizes=sizes,
            class_names=("negative", f"holds {options.target}"),
        )
        if self.info.image_shape[0] is None:
            images, _ = _digits(self.name, options.data_dir, "test")
            self.info = DatasetInfo(**{**vars(self.info), "image_shape": images.shape[1:]})

    def bags(self, split):
        if split not in self.info.split_sizes:
            raise DataError(f"mnist_bags has the splits train and test, not '{split}'")
        o = self.options
        images, labels = _digits(self.name, o.data_dir, split)
        indices, row_splits, bag_labels, instance_labels = generate_bags(
            labels,
            self.info.split_sizes[split],
            o.target,
            o.bag_mean,
            o.bag_std,
            o.positive_fraction,
            o.seed if split == "train" else TEST_SEED,
        )
        used, records = np.unique(indices, return_inverse=True)  # keep only the digits used
        return Bags(
            records=records.astype(np.int64),
            row_splits=row_splits,
            labels=bag_labels,
            instance_labels=instance_labels,
            images=images[used],
            instance_ids=used[records],
        )
