"""What every source provides, and sources whose images are arrays in memory (npz, synthetic).

A source serves whole splits:
  info                 a DatasetInfo (split_sizes of the whole splits)
  labels(split)        int64 labels of the split, in record order
  records(split)       a tf.data.Dataset of {"encoded", "label"}, in that fixed order
  take(split, indices) the records at those (sorted) indices, in order
  decode(encoded)      a graph op: uint8 image (H, W, C), or uint16 when info.high_depth
Slices (train[:80%]) are cut by tfssl/data/splits.py on top of this.
"""

import numpy as np
import tensorflow as tf

from tfssl.data.sources import DatasetInfo
from tfssl.data.sources.images import decode_array
from tfssl.errors import DataError


class Source:
    """Defaults shared by the sources: split checks, counts, and take() by filtering."""

    info = None
    #: Shown when a split is missing (e.g. how to slice one).
    split_hint = " (slices such as train[:90%] work too)"

    def check_split(self, split):
        if split not in self.info.split_sizes:
            raise DataError(
                f"dataset '{self.info.name}' has no split '{split}'; it has "
                f"{', '.join(self.info.split_sizes)}{self.split_hint}"
            )

    def num_examples(self, split):
        self.check_split(split)
        return self.info.split_sizes[split]

    def take(self, split, indices):
        mask = np.zeros(self.num_examples(split), bool)
        mask[indices] = True
        keep = tf.constant(mask)
        return (
            self.records(split)
            .enumerate()
            .filter(lambda index, record: keep[index])
            .map(lambda index, record: record)
        )

    def fingerprint(self):
        """What identifies the data behind this source, for on-disk caches."""
        return self.info.name


class ArraySource(Source):
    """Images held as numpy arrays: {split: (images (N, H, W, C), labels (N,))}."""

    def __init__(self, name, arrays, class_names=(), window=()):
        first = next(iter(arrays.values()))[0]
        self._arrays = arrays
        self._window = window
        num_classes = int(
            max((labels.max() + 1 for _, labels in arrays.values() if len(labels)), default=0)
        )
        self.info = DatasetInfo(
            name=name,
            num_classes=max(num_classes, len(class_names)),
            image_shape=tuple(first.shape[1:]),
            split_sizes={split: len(labels) for split, (_, labels) in arrays.items()},
            class_names=tuple(class_names) or tuple(str(i) for i in range(num_classes)),
            high_depth=first.dtype != np.uint8,
        )

    def labels(self, split):
        self.check_split(split)
        return self._arrays[split][1]

    def records(self, split):
        self.check_split(split)
        return self._slices(*self._arrays[split])

    def take(self, split, indices):
        self.check_split(split)
        images, labels = self._arrays[split]
        return self._slices(images[indices], labels[indices])

    @staticmethod
    def _slices(images, labels):
        return tf.data.Dataset.from_tensor_slices(
            {"encoded": images, "label": labels.astype(np.int64)}
        )

    def decode(self, encoded):
        return decode_array(encoded, self.info.high_depth, self._window)
