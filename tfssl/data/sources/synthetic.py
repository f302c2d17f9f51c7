"""synthetic:HxWxC: random images held in memory, for benchmarks and smoke tests."""

import numpy as np
import tensorflow as tf

from tfssl.data.sources import DatasetInfo, SourceOptions
from tfssl.errors import DataError


class SyntheticSource:
    """synthetic:HxWxC: random uint8 images and labels held in memory, for benchmarks and smoke
    tests."""

    SPLITS = {"train": 2048, "test": 512}
    NUM_CLASSES = 10

    def __init__(self, spec, options=SourceOptions()):
        try:
            height, width, channels = (int(v) for v in spec.lower().split("x"))
        except ValueError:
            raise DataError(f"cannot read synthetic:{spec}; write e.g. synthetic:32x32x3") from None
        if channels not in (1, 3) or min(height, width) < 1:
            raise DataError(f"synthetic:{spec} needs 1 or 3 channels and a positive size")
        self.info = DatasetInfo(
            name=f"synthetic:{spec}",
            num_classes=self.NUM_CLASSES,
            image_shape=(height, width, channels),
            split_sizes=dict(self.SPLITS),
            class_names=tuple(str(i) for i in range(self.NUM_CLASSES)),
        )
        rng = np.random.default_rng(0)
        self._data = {
            split: (
                rng.integers(0, 256, (n, height, width, channels), dtype=np.uint8),
                rng.integers(0, self.NUM_CLASSES, n).astype(np.int64),
            )
            for split, n in self.SPLITS.items()
        }

    def num_examples(self, split):
        if split not in self._data:
            raise DataError(f"synthetic data has splits train and test, not '{split}'")
        return len(self._data[split][1])

    def records(self, split):
        images, labels = (
            self._data[split] if split in self._data else (None, self.num_examples(split))
        )
        return tf.data.Dataset.from_tensor_slices({"encoded": images, "label": labels})

    def decode(self, encoded):
        return encoded

    def labels(self, split):
        return self._data[split][1]
