"""tf.data pipelines shared by every method.

Images are decoded and resized to --image_size once per element; with --cache_dataset (the
default) a split is decoded once into an array (tfssl/data/decoded.py) and the streams gather from
it, so no epoch after the first reads an image file.

Training streams are deterministic for a seed: the examples (indices, or records without the
cache) are shuffled with a fixed seed, repeated, numbered, and each element's
augmentation is seeded by (seed, element number). --balanced_sampling draws each element's
class uniformly (seeded) and the image from that class's own shuffled, repeated stream. So the
stream does not depend on parallelism or on how it is sharded over replicas and workers, and a
resumed run can skip straight to the step it stopped at.

Under tf.distribute, global batch k holds the same elements, in the same
per-replica groups, whatever the number of workers: the stream is cut into
per-replica batches, each input pipeline (worker) keeps every n-th one, and
hands its batches to its replicas in order.

With --positive_pairs=same_group (MICLe) pretraining reads pair_batches instead: each element is
two images of one group, and a global batch holds at most one anchor per group
(tfssl/data/groups.py says how, with epochs, resume and distributed input).
"""

import functools
import logging

import numpy as np
import tensorflow as tf

from tfssl.data import decoded, groups, subsets
from tfssl.data.sources import SourceOptions, load_source
from tfssl.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE
MAX_SHUFFLE_BUFFER = 100_000
log = logging.getLogger("tfssl")


def balanced_class_weights(labels, num_classes):
    """scikit-learn's 'balanced' weights, n / (k * n_c) over the k classes present (0 for the
    absent ones)."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    return np.where(present, len(labels) / (present.sum() * np.maximum(counts, 1)), 0.0)


def _size_error(dataset, sizes):
    shown = ", ".join(f"{h}x{w} ({n})" for h, w, n in sizes[:4])
    more = f" and {len(sizes) - 4} more" if len(sizes) > 4 else ""
    sides = np.repeat([min(h, w) for h, w, _ in sizes], [n for _, _, n in sizes])
    return DataError(
        f"images in {dataset} have different sizes ({shown}{more}): pass --image_size=N to "
        f"resize them all, e.g. --image_size={int(np.median(sides))}"
    )


def _sharding(batch_size, input_context):
    """(input pipelines, this pipeline's id, per-replica batch size) of a global batch."""
    if input_context is None:
        return 1, 0, batch_size
    return (
        input_context.num_input_pipelines,
        input_context.input_pipeline_id,
        input_context.get_per_replica_batch_size(batch_size),
    )


class DataBundle:
    """The dataset of a run: its source, image size, labeled subset and pipelines."""

    def __init__(self, cfg, run_dir):
        self.cfg = cfg
        self.run_dir = run_dir
        self.options = SourceOptions(
            cfg.data_dir, cfg.skip_corrupt_images, cfg.split_seed, cfg.window, cfg.folder_groups
        )
        self.source = load_source(cfg.dataset, self.options)
        self.info = self.source.info
        self.num_train_examples = self.source.num_examples(cfg.train_split)
        if self.num_train_examples == 0:
            raise DataError(f"split '{cfg.train_split}' of {cfg.dataset} is empty")
        self.source.num_examples(
            cfg.eval_split
        )  # fails early, with the splits it has, if eval_split is unknown
        native = self.info.image_shape[0]
        if not cfg.image_size and native is None:
            raise _size_error(cfg.dataset, self.info.image_sizes)
        self.image_size = cfg.image_size or native
        self.resize = native is None or tuple(self.info.image_shape[:2]) != (self.image_size,) * 2
        self.dtype = np.uint16 if self.info.high_depth else np.uint8
        self._arrays = {}
        groups.warn_shared_groups(self.source, cfg.train_split, cfg.eval_split)

    @property
    def image_shape(self):
        return (self.image_size, self.image_size, self.info.channels)

    @functools.cached_property
    def _labeled_parts(self):
        """(fit, val): the labeled subset the run fits on, and the share held out of it
        (--labeled_val_fraction; empty without)."""
        cfg = self.cfg
        chosen = subsets.labeled_subset(
            self.source,
            cfg.train_split,
            cfg.label_fraction,
            cfg.num_labels,
            cfg.label_seed,
            self.run_dir,
            cfg.label_subset_file,
            cfg.labeled_val_fraction,
        )
        return chosen if cfg.labeled_val_fraction else (chosen, np.zeros([0], np.int64))

    @property
    def labeled_indices(self):
        """Train-split indices of the labels the run fits on (without the validation share)."""
        return self._labeled_parts[0]

    @property
    def val_indices(self):
        """Train-split indices of the labels held out for validation (--val_split=labeled_val)."""
        return self._labeled_parts[1]

    @functools.cached_property
    def train_labels(self):
        return np.asarray(self.source.labels(self.cfg.train_split), np.int64)

    @functools.cached_property
    def known_labels(self):
        """The train labels, -1 outside the labeled part the run fits on."""
        known = np.full(self.num_train_examples, -1, np.int64)
        known[self.labeled_indices] = self.train_labels[self.labeled_indices]
        return known

    def num_examples(self, part="all"):
        """Examples in the train split's 'all', 'labeled' (fitted), 'unlabeled' (the rest, held-out
        validation images included: their labels are not used) or 'val' part."""
        if part == "all":
            return self.num_train_examples
        if part == "val":
            return len(self.val_indices)
        labeled = len(self.labeled_indices)
        return labeled if part == "labeled" else self.num_train_examples - labeled

    def part_indices(self, part):
        """Indices (in the train split) of one part, in split order."""
        if part == "all":
            return np.arange(self.num_train_examples)
        mask = np.zeros(self.num_train_examples, bool)
        mask[self.labeled_indices] = True
        if part == "unlabeled":
            mask = ~mask
        if not mask.any():
            raise DataError(
                f"the {part} part of {self.cfg.dataset}:{self.cfg.train_split} is empty; "
                "use fewer labels or a method without unlabeled data"
            )
        return np.flatnonzero(mask)

    def class_weights(self, part="labeled"):
        """Per-class weights of the supervised loss (--class_weight), or None."""
        if self.cfg.class_weight == "none":
            return None
        weights = balanced_class_weights(
            self.train_labels[self.part_indices(part)], self.info.num_classes
        )
        log.info("class weights (%s): %s", self.cfg.class_weight, np.round(weights, 4).tolist())
        return weights.astype(np.float32)

    # --- decoding ---
    def decode(self, encoded):
        """One record's image at image_size, uint8 (or uint16 for high-bit-depth data)."""
        image = self.source.decode(encoded)
        image.set_shape([None, None, self.info.channels])
        if not self.resize:
            return image
        resized = tf.image.resize(
            tf.cast(image, tf.float32), [self.image_size] * 2, "bilinear", antialias=True
        )
        return tf.saturate_cast(tf.round(resized), image.dtype)

    def to_float(self, image):
        """A decoded image as float32 in [0, 1], with its channel count known."""
        image = tf.image.convert_image_dtype(image, tf.float32)
        image.set_shape([None, None, self.info.channels])
        return image

    def decoded_array(self, split):
        """All images of a split, decoded and resized once (tfssl/data/decoded.py)."""
        if split not in self._arrays:
            key = decoded.cache_key(self.source, split, self.image_size, self.options)
            self._arrays[split] = decoded.decode_split(
                self.source,
                split,
                self.decode,
                self.image_shape,
                self.dtype,
                self.cfg.cache_dir,
                key,
            )
        return self._arrays[split]

    # --- training streams ---
    def _elements(self, indices, cached):
        """Train-split indices, or (index, record) pairs without the cache, in split order."""
        if cached:
            return tf.data.Dataset.from_tensor_slices(np.asarray(indices, np.int64))
        mask = np.zeros(self.num_train_examples, bool)
        mask[indices] = True
        keep = tf.constant(mask)
        return (
            self.source.records(self.cfg.train_split)
            .enumerate()
            .filter(lambda index, record: keep[index])
        )

    def _endless(self, indices, seed, cached):
        return (
            self._elements(indices, cached)
            .shuffle(
                min(len(indices), MAX_SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True
            )
            .repeat()
        )

    def _order(self, indices, seed, cached, balanced, all_labels):
        if not balanced:
            return self._endless(indices, seed, cached)
        labels = all_labels[indices]
        classes = np.unique(labels)
        streams = [
            self._endless(indices[labels == c], seed * 7919 + 1 + int(c), cached) for c in classes
        ]
        return tf.data.Dataset.sample_from_datasets(
            streams, [1.0 / len(classes)] * len(classes), seed=seed
        )

    def train_batches(
        self,
        view_fn,
        batch_size,
        part="all",
        input_context=None,
        start_step=0,
        stream=0,
        features=None,
        targets=None,
    ):
        """Endless per-replica batches of (view_fn(image, seed), label) from the train split.

        view_fn(image, seed) maps one float image to its features (one view, a
        tuple of views, ...). `stream` tells apart independent streams of one
        run (e.g. labeled and unlabeled), which get different seeds. With
        `features` (an array with one row per train-split example, in split
        order, e.g. codes a frozen network computed once) a batch holds the
        examples' rows, gathered once per batch, instead of views of images;
        view_fn is not used. The labeled part is drawn class-balanced with
        --balanced_sampling. With `targets` (an integer array with one entry
        per train-split example, e.g. true labels and pseudo-labels) the stream
        holds the examples whose entry is not negative, labeled with it, and
        `part` is not used. part="all_known" holds every example, labeled -1 outside the
        labeled part (held-out validation images included).
        """
        seed = self.cfg.seed * 1000 + stream
        if part == "all_known":  # every image; -1 for the labels the run may not use
            indices, all_labels = self.part_indices("all"), self.known_labels
        elif targets is None:
            indices, all_labels = self.part_indices(part), self.train_labels
        else:
            all_labels = np.asarray(targets, np.int64)
            indices = np.flatnonzero(all_labels >= 0)
        if features is not None and len(features) != self.num_train_examples:
            raise ValueError(
                f"features has {len(features)} rows for {self.num_train_examples} examples"
            )
        cached = features is not None or self.cfg.cache_dataset
        balanced = self.cfg.balanced_sampling and part == "labeled"
        ds = self._order(indices, seed, cached, balanced, all_labels)
        ds = ds.enumerate().skip(start_step * batch_size)
        num_pipelines, pipeline_id, per_replica_batch = _sharding(batch_size, input_context)
        labels = tf.constant(all_labels)

        def make_example(number, image, label):
            element_seed = tf.stack([tf.constant(seed, tf.int64), number])
            return view_fn(self.to_float(image), element_seed), label

        if cached:  # gather per batch of indices, before the per-image work
            ds = ds.batch(per_replica_batch, drop_remainder=True).shard(num_pipelines, pipeline_id)
            if features is not None:
                rows = tf.constant(features)
                return ds.map(
                    lambda numbers, index: (tf.gather(rows, index), tf.gather(labels, index))
                ).prefetch(AUTOTUNE)
            array = self.decoded_array(self.cfg.train_split)
            ds = ds.map(
                lambda numbers, index: (
                    numbers,
                    decoded.gather(array, index, self.dtype),
                    tf.gather(labels, index),
                )
            ).unbatch()
        else:
            if num_pipelines > 1:  # keep every n-th per-replica batch, before the costly map
                ds = (
                    ds.batch(per_replica_batch, drop_remainder=True)
                    .shard(num_pipelines, pipeline_id)
                    .unbatch()
                )
            ds = ds.map(
                lambda number, pair: (
                    number,
                    self.decode(pair[1]["encoded"]),
                    tf.gather(labels, pair[0]),
                ),
                num_parallel_calls=AUTOTUNE,
                deterministic=True,
            )
        ds = ds.map(make_example, num_parallel_calls=AUTOTUNE, deterministic=True)
        return ds.batch(per_replica_batch, drop_remainder=True).prefetch(AUTOTUNE)

    @functools.cached_property
    def group_index(self):
        """The groups of the train split (--positive_pairs=same_group); a one-line error when the
        source has none."""
        ids = self.source.groups(self.cfg.train_split)
        if ids is None:
            raise DataError(
                f"--positive_pairs=same_group needs a group id (e.g. the patient) per image and "
                f"{self.cfg.dataset} has none: use a csv: dataset with a group column, or a folder "
                "laid out as root/<class>/<group>/<image> with --folder_groups"
            )
        index = groups.GroupIndex.from_ids(ids)
        log.info("positive pairs from groups: %s", index.describe())
        return index

    def pair_batches(self, pair_fn, batch_size, input_context=None, start_step=0):
        """Endless per-replica batches of (pair_fn(image_a, image_b, seed), labels) where image_a
        and image_b are two images of one group (one image twice for a group of one) and labels
        (b, 2) are theirs; a global batch holds at most one anchor per group
        (tfssl/data/groups.py). Images come from the decoded train split (--cache_dataset)."""
        seed = self.cfg.seed * 1000
        index = self.group_index
        index.check_batch(batch_size, f"{self.cfg.dataset}:{self.cfg.train_split}")
        num_pipelines, pipeline_id, per_replica_batch = _sharding(batch_size, input_context)
        array = self.decoded_array(self.cfg.train_split)
        labels = tf.constant(self.train_labels)

        def gather(numbers, index_a, index_b):
            pair_labels = tf.stack([tf.gather(labels, index_a), tf.gather(labels, index_b)], -1)
            images_a = decoded.gather(array, index_a, self.dtype)
            images_b = decoded.gather(array, index_b, self.dtype)
            return numbers, images_a, images_b, pair_labels

        def make_example(number, image_a, image_b, pair_labels):
            element_seed = tf.stack([tf.constant(seed, tf.int64), number])
            views = pair_fn(self.to_float(image_a), self.to_float(image_b), element_seed)
            return views, pair_labels

        return (
            groups.pair_elements(index, batch_size, seed, start_step * batch_size)
            .batch(per_replica_batch, drop_remainder=True)
            .shard(num_pipelines, pipeline_id)
            .map(gather)
            .unbatch()
            .map(make_example, num_parallel_calls=AUTOTUNE, deterministic=True)
            .batch(per_replica_batch, drop_remainder=True)
            .prefetch(AUTOTUNE)
        )

    def eval_batches(self, view_fn, batch_size, split=None, limit_batches=0):
        """Batches of (view_fn(image), label) over an eval split, in order, last batch partial.
        `labeled_val` is the validation share of the labeled subset (train-split images)."""
        split = split or self.cfg.eval_split
        held_out = split == subsets.LABELED_VAL
        if held_out and not len(self.val_indices):
            raise DataError(
                "--val_split=labeled_val is empty: hold out labels with --labeled_val_fraction"
            )
        if self.cfg.cache_dataset:
            source_split = self.cfg.train_split if held_out else split
            array = self.decoded_array(source_split)
            labels = np.asarray(self.source.labels(source_split), np.int64)
            order = self.val_indices if held_out else np.arange(len(labels), dtype=np.int64)
            ds = (
                tf.data.Dataset.from_tensor_slices(np.asarray(order, np.int64))
                .batch(batch_size)
                .map(lambda index: decoded.gather(array, index, self.dtype))
                .unbatch()
            )
            ds = tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(labels[order]))
        elif held_out:
            ds = self._elements(self.val_indices, cached=False).map(
                lambda index, r: (self.decode(r["encoded"]), r["label"]),
                num_parallel_calls=AUTOTUNE,
            )
        else:
            ds = self.source.records(split).map(
                lambda r: (self.decode(r["encoded"]), r["label"]), num_parallel_calls=AUTOTUNE
            )
        ds = ds.map(
            lambda image, label: (view_fn(self.to_float(image)), label),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
        ds = ds.batch(batch_size)
        if limit_batches:
            ds = ds.take(limit_batches)
        return ds.prefetch(AUTOTUNE)
