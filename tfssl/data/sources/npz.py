"""npz:PATH: arrays with MedMNIST's keys, `<split>_images` and `<split>_labels` (splits train,
val, test), e.g. https://zenodo.org/records/10519652/files/breastmnist.npz.

Images are (N, H, W) or (N, H, W, C); uint8 stays as it is, other dtypes are high bit depth
(per-image min-max or --intensity_window). Labels of shape (N,) or (N, 1); multi-label files
(N, K > 1) are refused.
"""

import os

import numpy as np

from tfssl.data.sources import SourceOptions
from tfssl.data.sources.base import ArraySource
from tfssl.errors import DataError

SPLITS = ("train", "val", "test")


class NpzSource(ArraySource):
    def __init__(self, path, options=SourceOptions()):
        if not os.path.isfile(path):
            raise DataError(f"npz dataset {path} does not exist")
        try:
            archive = np.load(path)
        except Exception as e:
            raise DataError(f"cannot read {path} as .npz ({type(e).__name__})") from None
        arrays = {}
        with archive:
            for split in SPLITS:
                if f"{split}_images" not in archive.files:
                    continue
                images = archive[f"{split}_images"]
                labels = np.asarray(archive[f"{split}_labels"])
                if labels.ndim == 2 and labels.shape[1] > 1:
                    raise DataError(
                        f"{path} is multi-label ({labels.shape[1]} labels per image); "
                        "multi-label is not supported yet"
                    )
                images = images[..., None] if images.ndim == 3 else images
                if images.ndim != 4 or len(images) != len(labels):
                    raise DataError(
                        f"{path}: {split}_images {images.shape} and {split}_labels "
                        f"{labels.shape} do not form (N, H, W[, C]) images with N labels"
                    )
                arrays[split] = (images, labels.reshape(-1).astype(np.int64))
        if not arrays:
            raise DataError(
                f"{path} has none of {', '.join(s + '_images' for s in SPLITS)} (MedMNIST keys)"
            )
        super().__init__(f"npz:{path}", arrays, window=tuple(options.intensity_window))
        self._path = path

    def fingerprint(self):
        stat = os.stat(self._path)
        return f"{self.info.name}|{stat.st_size}|{stat.st_mtime_ns}"
