"""Writes a small balanced two-class npz: dataset from Fashion-MNIST, shaped like the kept-back
chest X-ray set of issue #49 (two balanced classes, 2,428 training images, 28 px grey), so the
comparison's small-data regime (24 and 242 labels, validation splits too small to choose) can be
read on data nobody tuned on without touching the kept-back set.

    python benchmarks/fashion_pair.py --out=/work/shared/data/fashion_pair/coat_pullover.npz

The idx files come from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/).
Train: --per_class images of each class, drawn with a seeded order from the 6,000 of each; test:
all 1,000 test images of each class; val (with --val_per_class, for tuning): that many more of each
class from the train images left over, so train and test are the same with or without it.
Labels: 0 for --classes' first, 1 for its second. Nothing of it is committed.
"""

import argparse
import gzip
import os

import numpy as np

NAMES = "t-shirt trouser pullover dress coat sandal shirt sneaker bag boot".split()


def read_idx(path):
    """A uint8 idx array (images: magic 2051, labels: 2049)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big")
    if magic == 2049:
        return np.frombuffer(data, np.uint8, count, 8)
    rows, cols = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
    return np.frombuffer(data, np.uint8, count * rows * cols, 16).reshape(count, rows, cols)


def pair(images, labels, classes, per_class, rng, skip=0):
    """The images of `classes` (per_class of each in a seeded order after the first `skip` of that
    order, or all), labelled 0 and 1."""
    picked = []
    for new_label, old_label in enumerate(classes):
        index = np.flatnonzero(labels == old_label)
        if per_class:
            index = np.sort(rng.permutation(index)[skip : skip + per_class])
        picked.append((index, new_label))
    index = np.concatenate([i for i, _ in picked])
    new_labels = np.concatenate([np.full(len(i), c, np.uint8) for i, c in picked])
    order = rng.permutation(len(index))
    return images[index[order]], new_labels[order][:, None]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--classes", default="coat,pullover")
    parser.add_argument("--per_class", type=int, default=1214)
    parser.add_argument("--val_per_class", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    classes = [NAMES.index(name) for name in args.classes.split(",")]
    source = {
        prefix: tuple(
            read_idx(os.path.join(args.source, f"{prefix}-{kind}-idx{dims}-ubyte.gz"))
            for kind, dims in (("images", 3), ("labels", 1))
        )
        for prefix in ("train", "t10k")
    }
    rng = np.random.default_rng(args.seed)
    arrays = {}
    for split, prefix, per_class in (("train", "train", args.per_class), ("test", "t10k", 0)):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = pair(
            *source[prefix], classes, per_class, rng
        )
    if args.val_per_class:  # the same permutations as train's, past its images
        arrays["val_images"], arrays["val_labels"] = pair(
            *source["train"],
            classes,
            args.val_per_class,
            np.random.default_rng(args.seed),
            skip=args.per_class,
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    for split in [s for s in ("train", "val", "test") if f"{s}_labels" in arrays]:
        counts = np.bincount(arrays[f"{split}_labels"][:, 0], minlength=2)
        print(f"{split}: {len(arrays[split + '_labels'])} images, {counts.tolist()} a class")


if __name__ == "__main__":
    main()
