"""synthetic:HxWxC: random images held in memory, for benchmarks and smoke tests."""

import numpy as np

from tfssl.data.sources import SourceOptions
from tfssl.data.sources.base import ArraySource
from tfssl.errors import DataError


class SyntheticSource(ArraySource):
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
        rng = np.random.default_rng(0)
        arrays = {
            split: (
                rng.integers(0, 256, (n, height, width, channels), dtype=np.uint8),
                rng.integers(0, self.NUM_CLASSES, n).astype(np.int64),
            )
            for split, n in self.SPLITS.items()
        }
        names = tuple(str(i) for i in range(self.NUM_CLASSES))
        super().__init__(f"synthetic:{spec}", arrays, names)
