"""Split slices, the same for every source: `name[a:b]` cuts a seeded, stratified order.

A source serves whole splits (records and labels). `slice_indices` turns a slice such as
`train[:80%]`, `train[80%:]` or `train[:500]` into indices of that split:

- each class's indices are put in a seeded pseudo-random order (a hash of (seed, index), so the
  same seed gives the same order with any numpy, on any machine);
- a percent boundary p is applied per class: class c (n_c images) is cut after
  floor(p * n_c / 100 + 1/2) of them, so every class keeps its share of a slice within one
  image;
- a count boundary k keeps exactly k images: they are handed out one at a time to the class with
  the largest claim n_c / (given_c + 1) among those still under their upper quota ceil(k' n_c / N)
  (Balinski and Young's quota method), so each class holds its share of the first k within one
  image, and [:k] grows by one image as k does.

Slices of one split with the same seed never overlap and together cover it (train[:80%] and
train[80%:], or train[:500] and train[500:]). Indices come back sorted, in split order.
"""

import re

import numpy as np

from tfssl.errors import DataError

_SPLIT = re.compile(r"(\w+)(?:\[(-?\d*)(%?):(-?\d*)(%?)\])?")


def parse_split(split):
    """'train[10%:50%]' -> ('train', 10, 50, True); 'train[:100]' -> ('train', None, 100, False);
    'test' -> ('test', None, None, False)."""
    match = _SPLIT.fullmatch(split.replace(" ", ""))
    if not match:
        raise DataError(
            f"cannot read split '{split}'; write e.g. train, or train[:80%], or train[100:]"
        )
    name, start, start_pct, stop, stop_pct = match.groups()
    start, stop = (int(v) if v not in (None, "", "-") else None for v in (start, stop))
    if (start is not None and stop is not None) and bool(start_pct) != bool(stop_pct):
        raise DataError(f"split '{split}' mixes a percentage and a count; use one kind")
    return name, start, stop, bool(start_pct or stop_pct)


def is_slice(split):
    name, start, stop, _ = parse_split(split)
    return start is not None or stop is not None


def _mix(values):
    """splitmix64 of uint64 values: a portable hash (numpy's generators may change across
    versions)."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def class_orders(labels, seed):
    """{class: its indices in the split, in the seeded order}."""
    labels = np.asarray(labels)
    keys = _mix(np.arange(len(labels), dtype=np.uint64) ^ _mix(np.uint64(seed)))
    order = np.lexsort((keys, labels))  # by class, then by key
    classes, starts = np.unique(labels[order], return_index=True)
    return dict(zip(classes.tolist(), np.split(order, starts[1:])))


def _percent_boundary(percent, counts):
    """Per-class cut after floor(p * n_c / 100 + 1/2) images, in exact integer arithmetic."""
    percent = min(max(percent if percent >= 0 else 100 + percent, 0), 100)
    return (2 * percent * counts + 100) // 200


def quota_counts(counts, k):
    """Per-class counts of the first k images under the quota method (see the module doc)."""
    counts = np.asarray(counts, np.int64)
    total = counts.sum()
    given = np.zeros_like(counts)
    for step in range(1, k + 1):
        upper = -((-step * counts) // total)  # ceil(step * n_c / N)
        eligible = (given < counts) & (given + 1 <= upper)
        claim = np.where(eligible, counts / (given + 1), -1.0)
        given[int(np.argmax(claim))] += 1
    return given


def _count_boundary(count, counts):
    total = int(counts.sum())
    count = min(max(count if count >= 0 else total + count, 0), total)
    return quota_counts(counts, count)


def slice_indices(labels, split, seed=0):
    """Sorted indices of `split` (e.g. 'train[:80%]') in the whole split whose labels are given."""
    _, start, stop, is_percent = parse_split(split)
    labels = np.asarray(labels)
    if start is None and stop is None:
        return np.arange(len(labels))
    orders = class_orders(labels, seed)
    classes = sorted(orders)
    counts = np.array([len(orders[c]) for c in classes], np.int64)
    boundary = _percent_boundary if is_percent else _count_boundary
    lo = np.zeros_like(counts) if start is None else boundary(start, counts)
    hi = counts if stop is None else boundary(stop, counts)
    chosen = [orders[c][lo[i] : max(hi[i], lo[i])] for i, c in enumerate(classes)]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros([0], np.int64)


class SlicedSource:
    """A source (whole splits) seen through split slices: what the rest of tfssl reads.

    It forwards `info`, `decode` and everything else to the source, and answers
    num_examples / labels / records / groups for `name` or `name[a:b]`."""

    def __init__(self, source, seed=0):
        self.source = source
        self.seed = seed
        self._indices = {}

    def __getattr__(self, name):
        return getattr(self.source, name)

    def base_split(self, split):
        name = parse_split(split)[0]
        self.source.check_split(name)
        return name

    def indices(self, split):
        """Indices of the slice in its whole split (None for a whole split)."""
        if not is_slice(split):
            self.base_split(split)
            return None
        if split not in self._indices:
            self._indices[split] = slice_indices(
                self.source.labels(self.base_split(split)), split, self.seed
            )
        return self._indices[split]

    def num_examples(self, split):
        indices = self.indices(split)
        return self.source.num_examples(split) if indices is None else len(indices)

    def labels(self, split):
        labels = self.source.labels(self.base_split(split))
        indices = self.indices(split)
        return labels if indices is None else labels[indices]

    def records(self, split):
        indices = self.indices(split)
        name = self.base_split(split)
        return self.source.records(name) if indices is None else self.source.take(name, indices)

    def groups(self, split):
        """The csv source's `group` column (e.g. patient) of the split, else None."""
        groups = getattr(self.source, "groups", lambda name: None)(self.base_split(split))
        indices = self.indices(split)
        return groups if groups is None or indices is None else groups[indices]
