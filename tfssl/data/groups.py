"""Positive pairs from groups, for MICLe (Multi-Instance Contrastive Learning, Azizi et al. 2021):
two different images of one group (a patient, study or slide), each augmented, form a positive
pair, and no global batch holds two anchors of one group, so no negative comes from the anchor's
own patient.

Groups come from the source: the csv source's `group` column, or a folder laid out as
root/[<split>/]<class>/<group>/<image> with --folder_groups. A row whose group is empty is a group
of its own.

The stream of anchors is a pure function of the element number n = 0, 1, 2, ... and the seed:
- Group epochs. Epoch e puts the G groups in a new order, a stateless shuffle seeded by (seed, e),
  and keeps the first E = floor(G / B) * B of them, B being the global batch size. Global batch k
  is elements kB .. kB + B - 1; since E is a multiple of B, it lies inside one group epoch and
  holds B different groups. The G - E groups an epoch leaves out take a new random place in the
  next one (drop_remainder over groups). Fewer groups than B is a one-line error.
- Pairs. Element n's group (k images) draws its pair with a stateless seed from (seed, n): the
  first image uniformly, the second uniformly among the other k - 1, so every ordered pair of two
  different images is equally likely. A group of one image gives that image twice: its two views
  are two augmentations of it, SimCLR's pair.
- Distributed input. The elements are cut into per-replica batches of B / R and input pipeline p
  of P keeps every P-th one, as the other training streams do (tfssl/data/pipeline.py); the R
  per-replica batches of global step k are elements kB .. kB + B - 1 in every layout, so the
  guarantee holds for the global batch, the one NT-Xent draws its negatives from.
- Resume. A run resumed at step s starts at element n = s * B, in its group epoch, without
  replaying the stream.
--train_epochs still counts images (steps = epochs * images / B): a same_group run and an augment
run with the same flags take the same steps of the same batch.
"""

import dataclasses
import logging

import numpy as np
import tensorflow as tf

from tfssl.errors import DataError

log = logging.getLogger("tfssl")
_FOREVER = np.iinfo(np.int64).max
_ORDER_SALT = 0x47524F55  # fold-in constants: the group orders, the pair draws and the
_PAIR_SALT = 0x4D49434C  # augmentation seeds (seed, n) are independent streams


@dataclasses.dataclass(frozen=True)
class GroupIndex:
    """Groups of train-split examples. Group g's examples (indices in the split, in split order)
    are members[starts[g] : starts[g] + sizes[g]]; groups are numbered in order of their first
    example."""

    members: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    @classmethod
    def from_ids(cls, group_ids, indices=None):
        """The groups of the examples `indices` (default: all) whose group ids are given, one per
        example of the split; an empty id makes a group of its own."""
        group_ids = np.asarray(group_ids, object)
        indices = np.arange(len(group_ids)) if indices is None else np.asarray(indices, np.int64)
        numbers = {}
        group_of = np.empty(len(indices), np.int64)
        for position, index in enumerate(indices):
            name = str(group_ids[index]).strip()
            key = name if name else ("", int(index))
            group_of[position] = numbers.setdefault(key, len(numbers))
        order = np.argsort(group_of, kind="stable")
        sizes = np.bincount(group_of, minlength=len(numbers)).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return cls(indices[order].astype(np.int64), starts, sizes)

    @property
    def num_groups(self):
        return len(self.sizes)

    def group(self, g):
        return self.members[self.starts[g] : self.starts[g] + self.sizes[g]]

    def describe(self):
        single = int((self.sizes == 1).sum())
        return (
            f"{len(self.members)} images in {self.num_groups} groups ({self.num_groups - single} "
            f"with 2-{int(self.sizes.max())} images; {single} of one image, whose pair is two "
            "augmentations of it)"
        )

    def check_batch(self, batch_size, dataset):
        if self.num_groups < batch_size:
            raise DataError(
                f"--positive_pairs=same_group puts at most one image of a group in a batch, and "
                f"{dataset} has {self.num_groups} groups for --train_batch_size={batch_size}: "
                f"use --train_batch_size={self.num_groups} or less"
            )


def epoch_length(num_groups, batch_size):
    """Anchors per group epoch: the largest multiple of the batch size that fits the groups."""
    return num_groups // batch_size * batch_size


def pair_elements(index, batch_size, seed, start=0):
    """Endless (n, index_a, index_b) for n = start, start + 1, ...: element n's two examples
    (see the module doc). batch_size is the global batch size."""
    index.check_batch(batch_size, "the dataset")
    num_groups = index.num_groups
    length = epoch_length(num_groups, batch_size)
    members = tf.constant(index.members)
    starts = tf.constant(index.starts)
    sizes = tf.constant(index.sizes)
    base = tf.constant(seed, tf.int64)

    def epoch(e):
        order_seed = tf.random.experimental.stateless_fold_in(tf.stack([base, e]), _ORDER_SALT)
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_groups, dtype=tf.int64), order_seed
        )
        return tf.data.Dataset.from_tensor_slices(order[:length])

    first_epoch = start // length
    groups = (
        tf.data.Dataset.range(first_epoch, _FOREVER)
        .flat_map(epoch)
        .skip(start - first_epoch * length)
    )

    def pair(n, g):
        size = sizes[g]
        seed_a, seed_b = tf.unstack(
            tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(tf.stack([base, n]), _PAIR_SALT), 2
            )
        )
        zero = tf.constant(0, tf.int64)
        a = tf.random.stateless_uniform([], seed_a, zero, size, dtype=tf.int64)
        other = tf.random.stateless_uniform(
            [], seed_b, zero, tf.maximum(size - 1, 1), dtype=tf.int64
        )
        b = tf.where(size > 1, (a + 1 + other) % size, a)
        return n, members[starts[g] + a], members[starts[g] + b]

    numbers = tf.data.Dataset.range(start, _FOREVER)
    return tf.data.Dataset.zip(numbers, groups).map(pair)


def warn_shared_groups(source, train_split, eval_split):
    """Warns when a group (e.g. a patient) has images in both the train and the eval split."""
    train = source.groups(train_split)
    held_out = source.groups(eval_split)
    if train is None or held_out is None:
        return
    shared = ({str(g).strip() for g in train} & {str(g).strip() for g in held_out}) - {""}
    if shared:
        log.warning(
            "%d groups (e.g. %s) have images in both %s and %s: eval scores of images of "
            "patients seen in training are optimistic; split by group",
            len(shared),
            sorted(shared)[0],
            train_split,
            eval_split,
        )
