"""Bags of instances for multiple-instance learning (--mode=mil): sources and tf.data pipelines.

A bag is a set of images with one label; its instances have no label of their own (or, as in
MNIST-bags, one that training never sees). The image DataBundle serves one label per image, so
MIL has its own bundle, BagData, with the same role for the trainer (the method's `data`).

Batches are dicts of padded tensors: 'instances' (B, N, H, W, C) float in [0, 1], 'mask' (B, N)
True for real instances, 'label' (B,) and 'instance_labels' (B, N) (-1 where unknown or padded),
with N the largest bag of the batch. Pooling gives padded instances exactly zero weight
(tfssl/models/mil.py) and the encoder never sees them.

Sources, by --dataset prefix: BAG_SOURCES. A folder holds root/<class>/<bag>/<instance images>
(one split, 'train') or root/<split>/<class>/<bag>/<instance images>.
"""

import dataclasses
import importlib
import os

import numpy as np
import tensorflow as tf

from tfssl.data import augment
from tfssl.data.sources import DatasetInfo
from tfssl.data.sources.images import NATIVE_EXTENSIONS, probe
from tfssl.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE

BAG_SOURCES = {
    "mnist_bags": "tfssl.data.mnist_bags:MnistBagsSource",
    "folder": "tfssl.data.bags:FolderBagsSource",
}


@dataclasses.dataclass(frozen=True)
class BagOptions:
    """How to read or generate bags, from the run's flags."""

    data_dir: str = ""
    seed: int = 0
    target: int = 9
    bag_mean: float = 10.0
    bag_std: float = 2.0
    train_bags: int = 200
    test_bags: int = 1000
    positive_fraction: float = 0.5

    @classmethod
    def from_config(cls, cfg):
        return cls(
            cfg.data_dir,
            cfg.seed,
            cfg.mil_target,
            cfg.mil_bag_mean,
            cfg.mil_bag_std,
            cfg.mil_train_bags,
            cfg.mil_test_bags,
            cfg.mil_positive_fraction,
        )


@dataclasses.dataclass(frozen=True)
class Bags:
    """The bags of one split: instance i of bag b is records[row_splits[b] + i]. records are file
    paths, or indices into `images` (uint8, (M, H, W, C)) when it is given."""

    records: np.ndarray
    row_splits: np.ndarray
    labels: np.ndarray
    instance_labels: np.ndarray
    images: np.ndarray = None
    names: tuple = ()  # one per bag (folder bags)
    instance_ids: np.ndarray = None  # where each instance came from (e.g. its index in MNIST)

    def __len__(self):
        return len(self.labels)

    @property
    def sizes(self):
        return np.diff(self.row_splits)

    def subset(self, bag_indices):
        """The bags at bag_indices, in that order."""
        bag_indices = np.asarray(bag_indices, np.int64)
        members = [np.arange(self.row_splits[b], self.row_splits[b + 1]) for b in bag_indices]
        flat = np.concatenate(members) if members else np.zeros([0], np.int64)
        sizes = self.sizes[bag_indices]
        return Bags(
            records=self.records[flat],
            row_splits=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            labels=self.labels[bag_indices],
            instance_labels=self.instance_labels[flat],
            images=self.images,
            names=tuple(self.names[b] for b in bag_indices) if self.names else (),
            instance_ids=None if self.instance_ids is None else self.instance_ids[flat],
        )


def validation_split(labels, fraction, seed):
    """(fit indices, validation indices): round(fraction * count) bags of every class, at least
    one of a class with two or more, chosen with seed."""
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = int(round(fraction * len(members)))
        if fraction > 0 and len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        held.extend(members[:count])
    held = np.sort(np.asarray(held, np.int64))
    return np.setdiff1d(np.arange(len(labels)), held), held


class FolderBagsSource:
    """root/<class>/<bag>/<image> (one split, 'train'), or root/<split>/<class>/<bag>/<image>."""

    def __init__(self, root, options=BagOptions()):
        if not os.path.isdir(root):
            raise DataError(f"bag folder {root} does not exist or is not a directory")
        self.root = root

        def subdirs(path):
            return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))

        top = subdirs(root)
        if not top:
            raise DataError(
                f"bag folder {root} has no class sub-folders; lay it out as "
                f"{root}/<class>/<bag>/<image> or {root}/<split>/<class>/<bag>/<image>"
            )
        # With a split level, the folders two levels down (the bags) hold folders, not images.
        deep = any(
            subdirs(os.path.join(root, a, b)) for a in top for b in subdirs(os.path.join(root, a))
        )
        split_dirs = {a: os.path.join(root, a) for a in top} if deep else {"train": root}
        class_names = sorted({c for path in split_dirs.values() for c in subdirs(path)})
        self._bags, channels, shapes = {}, {}, set()
        for split, path in split_dirs.items():
            files, splits, labels, names = [], [0], [], []
            for label, class_name in enumerate(class_names):
                class_dir = os.path.join(path, class_name)
                for bag in subdirs(class_dir) if os.path.isdir(class_dir) else []:
                    bag_dir = os.path.join(class_dir, bag)
                    images = sorted(
                        os.path.join(bag_dir, n)
                        for n in os.listdir(bag_dir)
                        if n.lower().endswith(NATIVE_EXTENSIONS)  # bags decode with tf.io
                    )
                    if not images:
                        raise DataError(f"bag {bag_dir} holds no images; add some or remove it")
                    for image in images:
                        try:
                            properties = probe(image)
                            c, h, w = properties.channels, properties.height, properties.width
                        except Exception as e:
                            raise DataError(f"cannot read image {image} ({type(e).__name__})")
                        channels.setdefault(c, image)
                        shapes.add((h, w))
                    files.extend(images)
                    splits.append(len(files))
                    labels.append(label)
                    names.append(os.path.join(class_name, bag))
            self._bags[split] = Bags(
                records=np.asarray(files, dtype=object),
                row_splits=np.asarray(splits, np.int64),
                labels=np.asarray(labels, np.int64),
                instance_labels=np.full(len(files), -1, np.int64),
                names=tuple(names),
            )
        if len(channels) > 1:
            raise DataError(
                f"bag folder mixes grayscale ({channels[1]}) and colour ({channels[3]}) images; "
                "convert them all to one mode"
            )
        if not len(self._bags.get("train", ())):
            raise DataError(f"bag folder {root} has no training bags (split 'train')")
        height, width = shapes.pop() if len(shapes) == 1 else (None, None)
        self.info = DatasetInfo(
            name=f"folder:{root}",
            num_classes=len(class_names),
            image_shape=(height, width, next(iter(channels))),
            split_sizes={k: len(v) for k, v in self._bags.items()},
            class_names=tuple(class_names),
        )

    def bags(self, split):
        if split not in self._bags:
            hint = " (--eval_split=validation: the held-out bags)" if len(self._bags) < 2 else ""
            raise DataError(
                f"bag folder {self.root} has no split '{split}'; it has "
                f"{', '.join(self._bags)}{hint}"
            )
        return self._bags[split]


def load_bag_source(cfg):
    prefix, _, spec = cfg.dataset.partition(":")
    if prefix not in BAG_SOURCES:
        raise DataError(
            f"--mode=mil reads bags: --dataset=mnist_bags, or folder:/root holding "
            f"root/<class>/<bag>/<images>, not --dataset={cfg.dataset}"
        )
    module_name, class_name = BAG_SOURCES[prefix].split(":")
    source_class = getattr(importlib.import_module(module_name), class_name)
    return source_class(spec, BagOptions.from_config(cfg))


class BagData:
    """The bags of a MIL run: the training bags it fits, its validation bags (held out of the
    training bags unless the source has a 'validation' split) and its eval splits."""

    def __init__(self, cfg, run_dir):
        self.cfg = cfg
        self.run_dir = run_dir
        self.source = load_bag_source(cfg)
        self.info = self.source.info
        native = self.info.image_shape[0]
        if not cfg.image_size and native is None:
            raise DataError(
                f"images in {cfg.dataset} have different sizes: pass --image_size=N to resize them"
            )
        self.image_size = cfg.image_size or native
        self._eval_datasets, self._splits = {}, {}
        train = self.source.bags(cfg.train_split)
        if "validation" in self.info.split_sizes:
            self._parts = {"fit": train, "validation": self.source.bags("validation")}
        else:
            fit, held = validation_split(train.labels, cfg.mil_val_fraction, cfg.seed)
            self._parts = {"fit": train.subset(fit), "validation": train.subset(held)}
        if not len(self._parts["fit"]):
            raise DataError(f"{cfg.dataset} has no training bags left after validation")
        self.bags(cfg.eval_split)  # an unknown eval split fails now, not after training
        if cfg.mil_patience and not len(self._parts["validation"]):
            raise DataError(
                "early stopping (--mil_patience) needs validation bags: raise --mil_val_fraction "
                "or pass --mil_patience=0"
            )

    @property
    def image_shape(self):
        return (self.image_size, self.image_size, self.info.channels)

    def num_examples(self, part="all"):
        """Training bags one epoch goes through (the validation bags excluded)."""
        return len(self._parts["fit"])

    def bags(self, split):
        """The Bags of 'validation', of the train split (the bags it fits) or of another split."""
        if split == "validation":
            return self._parts["validation"]
        if split == self.cfg.train_split:
            return self._parts["fit"]
        if split not in self._splits:
            self._splits[split] = self.source.bags(split)
        return self._splits[split]

    def _bag_dataset(self, bags, index_dataset):
        """index_dataset of bag numbers -> dict elements of one bag each (unpadded)."""
        size, channels = self.image_size, self.info.channels
        row_splits = tf.constant(bags.row_splits)
        labels = tf.constant(bags.labels)
        instance_labels = tf.constant(bags.instance_labels)
        if bags.images is not None:
            table = tf.constant(bags.images)
            records = tf.constant(bags.records)

            def decode(chosen):
                return tf.gather(table, chosen)

        else:
            records = tf.constant(bags.records.astype(str))

            def read(path):
                image = tf.io.decode_image(
                    tf.io.read_file(path), channels=channels, expand_animations=False
                )
                return augment.eval_view(tf.image.convert_image_dtype(image, tf.float32), size)

            def decode(chosen):
                return tf.map_fn(
                    read, chosen, fn_output_signature=tf.TensorSpec([size, size, channels])
                )

        def make_bag(index):
            start, stop = row_splits[index], row_splits[index + 1]
            images = decode(records[start:stop])
            if images.dtype == tf.uint8:
                images = augment.eval_view(tf.image.convert_image_dtype(images, tf.float32), size)
            return {
                "instances": tf.ensure_shape(images, [None, size, size, channels]),
                "mask": tf.ones([stop - start], tf.bool),
                "label": labels[index],
                "instance_labels": instance_labels[start:stop],
            }

        return index_dataset.map(make_bag, num_parallel_calls=AUTOTUNE, deterministic=True)

    @staticmethod
    def _padded(ds, batch_size, drop_remainder):
        return ds.padded_batch(
            batch_size,
            padding_values={
                "instances": 0.0,
                "mask": False,
                "label": tf.constant(0, tf.int64),
                "instance_labels": tf.constant(-1, tf.int64),
            },
            drop_remainder=drop_remainder,
        )

    def train_batches(self, batch_size, input_context=None, start_step=0):
        """Endless per-replica padded batches of the training bags, reshuffled every epoch with
        --seed, resuming at start_step. Global batch k is the same for any number of replicas
        and workers (each pipeline keeps every n-th per-replica batch)."""
        bags = self._parts["fit"]
        order = tf.data.Dataset.range(len(bags)).shuffle(
            len(bags), seed=self.cfg.seed * 1000, reshuffle_each_iteration=True
        )
        order = order.repeat().skip(start_step * batch_size)
        num_pipelines, pipeline_id, per_replica = 1, 0, batch_size
        if input_context is not None:
            num_pipelines = input_context.num_input_pipelines
            pipeline_id = input_context.input_pipeline_id
            per_replica = input_context.get_per_replica_batch_size(batch_size)
        if num_pipelines > 1:
            order = order.batch(per_replica, drop_remainder=True)
            order = order.shard(num_pipelines, pipeline_id).unbatch()
        ds = self._bag_dataset(bags, order)
        return self._padded(ds, per_replica, True).prefetch(AUTOTUNE)

    def eval_batches(self, split, batch_size):
        """Padded batches of a split's bags, in order, the last one partial (built once per split
        and batch size: early stopping reads the validation bags every epoch)."""
        key = (split, batch_size)
        if key not in self._eval_datasets:
            bags = self.bags(split)
            ds = self._bag_dataset(bags, tf.data.Dataset.range(len(bags)))
            self._eval_datasets[key] = self._padded(ds, batch_size, False).prefetch(AUTOTUNE)
        return self._eval_datasets[key]
