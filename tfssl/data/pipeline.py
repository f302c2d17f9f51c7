"""tf.data pipelines shared by every method.

Training streams are deterministic for a seed: records are cached encoded,
shuffled with a fixed seed, repeated, numbered, and each element's
augmentation is seeded by (seed, element number). So the stream does not
depend on parallelism or on how it is sharded over replicas and workers, and a
resumed run can skip straight to the step it stopped at.

Under tf.distribute, global batch k holds the same elements, in the same
per-replica groups, whatever the number of workers: the stream is cut into
per-replica batches, each input pipeline (worker) keeps every n-th one, and
hands its batches to its replicas in order.
"""

import functools

import numpy as np
import tensorflow as tf

from tfssl.data import subsets
from tfssl.data.sources import SourceOptions, load_source
from tfssl.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE
MAX_SHUFFLE_BUFFER = 100_000


class DataBundle:
    """The dataset of a run: its source, image size, labeled subset and pipelines."""

    def __init__(self, cfg, run_dir):
        self.cfg = cfg
        self.run_dir = run_dir
        self.source = load_source(cfg.dataset, SourceOptions(cfg.data_dir, cfg.skip_corrupt_images))
        self.info = self.source.info
        self.num_train_examples = self.source.num_examples(cfg.train_split)
        if self.num_train_examples == 0:
            raise DataError(f"split '{cfg.train_split}' of {cfg.dataset} is empty")
        self.source.num_examples(
            cfg.eval_split
        )  # fails early, with the splits it has, if eval_split is unknown
        native = self.info.image_shape[0]
        if not cfg.image_size and native is None:
            raise DataError(
                f"images in {cfg.dataset} have different sizes: pass --image_size=N to resize them"
            )
        self.image_size = cfg.image_size or native

    @property
    def image_shape(self):
        return (self.image_size, self.image_size, self.info.channels)

    @functools.cached_property
    def labeled_indices(self):
        cfg = self.cfg
        return subsets.labeled_subset(
            self.source,
            cfg.train_split,
            cfg.label_fraction,
            cfg.num_labels,
            cfg.label_seed,
            self.run_dir,
            cfg.label_subset_file,
        )

    def num_examples(self, part="all"):
        """Examples in the train split's 'all', 'labeled' or 'unlabeled' part."""
        if part == "all":
            return self.num_train_examples
        labeled = len(self.labeled_indices)
        return labeled if part == "labeled" else self.num_train_examples - labeled

    def _train_records(self, part, targets=None):
        """(index in the train split, record) pairs of one part, in split order; with `targets`,
        those whose target is not negative, labeled with it."""
        records = self.source.records(self.cfg.train_split).enumerate()
        if targets is not None:
            table = tf.constant(targets, tf.int64)

            def has_target(index, record):
                return table[index] >= 0

            def relabel(index, record):
                return index, {**record, "label": tf.cast(table[index], record["label"].dtype)}

            return records.filter(has_target).map(relabel)
        if part == "all":
            return records
        mask = np.zeros(self.num_train_examples, bool)
        mask[self.labeled_indices] = True
        if part == "unlabeled":
            mask = ~mask
        if not mask.any():
            raise DataError(
                f"the {part} part of {self.cfg.dataset}:{self.cfg.train_split} is empty; "
                "use fewer labels or a method without unlabeled data"
            )
        keep = tf.constant(mask)

        def is_kept(index, record):
            return keep[index]

        return records.filter(is_kept)

    def to_float(self, record):
        """Decoded image as float32 in [0, 1], with its channel count known."""
        image = tf.image.convert_image_dtype(self.source.decode(record["encoded"]), tf.float32)
        image.set_shape([None, None, self.info.channels])
        return image

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
        view_fn is not used. With `targets` (an integer array with one entry
        per train-split example, e.g. true labels and pseudo-labels) the stream
        holds the examples whose entry is not negative, labeled with it, and
        `part` is not used.
        """
        seed = self.cfg.seed * 1000 + stream
        records = self._train_records(part, targets)
        if features is not None:
            features = tf.constant(features)
            if features.shape[0] != self.num_train_examples:
                raise ValueError(
                    f"features has {features.shape[0]} rows for {self.num_train_examples} examples"
                )
            records = records.map(lambda index, record: (index, {"label": record["label"]}))
        if self.cfg.cache_dataset:
            records = records.cache()
        num_examples = self.num_examples(part) if targets is None else int(np.sum(targets >= 0))
        records = records.shuffle(
            min(num_examples, MAX_SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True
        )
        ds = records.repeat().enumerate().skip(start_step * batch_size)
        num_pipelines, pipeline_id, per_replica_batch = 1, 0, batch_size
        if input_context is not None:
            num_pipelines = input_context.num_input_pipelines
            pipeline_id = input_context.input_pipeline_id
            per_replica_batch = input_context.get_per_replica_batch_size(batch_size)

        if features is not None:  # no per-example work: batch the indices, then gather their rows
            ds = ds.batch(per_replica_batch, drop_remainder=True).shard(num_pipelines, pipeline_id)
            return ds.map(
                lambda numbers, batch: (tf.gather(features, batch[0]), batch[1]["label"])
            ).prefetch(AUTOTUNE)

        def make_example(number, indexed_record):
            _, record = indexed_record
            element_seed = tf.stack([tf.constant(seed, tf.int64), number])
            return view_fn(self.to_float(record), element_seed), record["label"]

        if num_pipelines > 1:  # keep every n-th per-replica batch, before the costly map
            ds = (
                ds.batch(per_replica_batch, drop_remainder=True)
                .shard(num_pipelines, pipeline_id)
                .unbatch()
            )
        ds = ds.map(make_example, num_parallel_calls=AUTOTUNE, deterministic=True)
        return ds.batch(per_replica_batch, drop_remainder=True).prefetch(AUTOTUNE)

    def eval_batches(self, view_fn, batch_size, split=None, limit_batches=0):
        """Batches of (view_fn(image), label) over an eval split, in order, last batch partial."""
        ds = self.source.records(split or self.cfg.eval_split)
        ds = ds.map(lambda r: (view_fn(self.to_float(r)), r["label"]), num_parallel_calls=AUTOTUNE)
        ds = ds.batch(batch_size)
        if limit_batches:
            ds = ds.take(limit_batches)
        return ds.prefetch(AUTOTUNE)
