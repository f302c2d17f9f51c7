"""Class-balanced labeled subsets, saved to a file so every method uses the same labels."""

import json
import math
import os

import numpy as np

from tfssl.data.splits import is_slice
from tfssl.errors import ConfigError, DataError

SUBSET_FILE = "label_subset.json"


def choose_labeled_indices(labels, num_classes, fraction=1.0, num_labels=0, seed=0):
    """Sorted indices of a class-balanced labeled subset.

    num_labels > 0 keeps num_labels / num_classes examples per class; otherwise
    fraction < 1 keeps round(fraction * N / num_classes) per class (an error when that is 0),
    and fraction == 1 keeps every example. Examples are drawn without replacement with numpy's
    default_rng(seed), class by class.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    if num_labels:
        if num_labels % num_classes:
            raise ConfigError(
                f"--num_labels={num_labels} is not divisible by the {num_classes} classes; "
                f"use a multiple of {num_classes}"
            )
        if num_labels > len(labels):
            raise ConfigError(
                f"--num_labels={num_labels} is larger than the {len(labels)} examples in the split"
            )
        per_class = num_labels // num_classes
    elif fraction >= 1.0:
        return np.arange(len(labels))
    else:
        per_class = int(round(fraction * len(labels) / num_classes))
        if per_class < 1:
            smallest = math.ceil(num_classes / len(labels) * 10**4) / 10**4
            raise ConfigError(
                f"--label_fraction={fraction} keeps 0 labels per class of {len(labels)} images "
                f"in {num_classes} classes; use at least {smallest:g} (1 per class) or --num_labels"
            )
    if per_class > counts.min():
        raise ConfigError(
            f"{per_class} labels per class asked, but class {int(counts.argmin())} has only "
            f"{int(counts.min())} examples; ask for fewer labels"
        )
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
        for c in range(num_classes)
    ]
    return np.sort(np.concatenate(chosen))


def labeled_subset(source, split, fraction, num_labels, seed, run_dir, subset_file=""):
    """The labeled indices for this run: read from subset_file or run_dir, else chosen and saved."""
    num_examples = source.num_examples(split)
    spec = {
        "dataset": source.info.name,
        "split": split,
        "num_examples": num_examples,
        "label_fraction": fraction,
        "num_labels": num_labels,
        "label_seed": seed,
    }
    if is_slice(split):  # the slice's images depend on how slices are cut, and on the seed
        spec["split_order"] = f"stratified, split_seed={getattr(source, 'seed', 0)}"
    saved_path = os.path.join(run_dir, SUBSET_FILE)
    if subset_file and not os.path.exists(subset_file):
        raise DataError(f"--label_subset_file={subset_file} does not exist")
    path = subset_file or (saved_path if os.path.exists(saved_path) else "")
    if path:
        with open(path) as f:
            saved = json.load(f)
        if (saved["dataset"], saved["split"], saved["num_examples"]) != (
            spec["dataset"],
            split,
            num_examples,
        ):
            raise DataError(
                f"label subset file {path} is for {saved['dataset']}:{saved['split']}, not "
                f"{spec['dataset']}:{split}; pass the matching --label_subset_file"
            )
        if saved.get("split_order") != spec.get("split_order"):
            raise DataError(
                f"label subset file {path} indexes {split} cut as "
                f"{saved.get('split_order', 'contiguous slices (before stratified slices)')}, "
                f"not {spec['split_order']}; use a new --model_dir or the same --split_seed"
            )
        if not subset_file and any(
            saved[k] != spec[k] for k in ("label_fraction", "num_labels", "label_seed")
        ):
            raise ConfigError(
                f"{run_dir} was trained with other labels ({SUBSET_FILE}); use a new "
                "--model_dir or the same --label_fraction/--num_labels/--label_seed"
            )
        indices = np.asarray(saved["indices"], np.int64)
    else:
        indices = choose_labeled_indices(
            source.labels(split), source.info.num_classes, fraction, num_labels, seed
        )
    os.makedirs(run_dir, exist_ok=True)
    if not os.path.exists(saved_path):
        tmp = saved_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({**spec, "indices": indices.tolist()}, f)
        os.replace(tmp, saved_path)
    return indices
