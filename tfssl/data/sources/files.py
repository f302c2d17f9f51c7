"""Sources whose records are image files: folders and CSV lists share this.

Every file is probed once when the dataset opens (tfssl/data/sources/images.py): unreadable
files are named (or skipped with --skip_corrupt_images), and mixed grayscale and colour, or mixed
8-bit and high-bit-depth files, are refused in one line. Sizes may vary: the pipeline then needs
--image_size, and info.image_sizes lists the sizes seen.
"""

import collections
import hashlib
import logging
import os

import numpy as np
import tensorflow as tf

from tfssl.data.sources import DatasetInfo, SourceOptions
from tfssl.data.sources.base import Source
from tfssl.data.sources.images import (
    NATIVE_EXTENSIONS,
    decode_file,
    extension,
    probe,
)
from tfssl.errors import DataError

log = logging.getLogger("tfssl")


class FileSource(Source):
    """{split: (paths, labels)} of image files, probed once."""

    def __init__(self, name, files, class_names, options=SourceOptions(), groups=None):
        self._window = tuple(options.intensity_window)
        self._files, self._groups = {}, {}
        properties = {}
        for split, (paths, labels) in files.items():
            kept = []
            for i, path in enumerate(paths):
                try:
                    properties[path] = probe(path)
                except DataError:
                    raise
                except Exception as e:
                    if not options.skip_corrupt_images:
                        raise DataError(
                            f"cannot read image {path} ({type(e).__name__}); "
                            "remove it or pass --skip_corrupt_images"
                        ) from None
                    log.warning("skipping unreadable image %s", path)
                    continue
                kept.append(i)
            self._files[split] = (
                [paths[i] for i in kept],
                np.asarray(labels, np.int64)[kept] if len(kept) else np.zeros([0], np.int64),
            )
            if groups is not None:
                self._groups[split] = np.asarray(groups[split], object)[kept]
        if not properties:
            raise DataError(f"dataset {name} holds no readable images")
        channels = self._one_of(properties, "channels", {1: "grayscale", 3: "colour"}, name)
        high_depth = self._one_of(
            properties, "high_depth", {False: "8-bit", True: "16-bit/DICOM"}, name
        )
        sizes = collections.Counter((p.height, p.width) for p in properties.values())
        ((height, width),) = sizes if len(sizes) == 1 else [(None, None)]
        self._numpy_files = any(extension(path) not in NATIVE_EXTENSIONS for path in properties)
        self.info = DatasetInfo(
            name=name,
            num_classes=len(class_names),
            image_shape=(height, width, channels),
            split_sizes={k: len(v[0]) for k, v in self._files.items()},
            class_names=tuple(class_names),
            high_depth=high_depth,
            image_sizes=tuple((h, w, n) for (h, w), n in sizes.most_common()),
        )

    @staticmethod
    def _one_of(properties, field, names, dataset):
        """The one value of `field` all files share; a one-line error names a file of each."""
        first = {}
        for path, p in properties.items():
            first.setdefault(getattr(p, field), path)
        if len(first) > 1:
            shown = " and ".join(f"{names[v]} ({path})" for v, path in sorted(first.items()))
            raise DataError(f"dataset {dataset} mixes {shown} images; convert them all to one")
        return next(iter(first))

    def labels(self, split):
        self.check_split(split)
        return self._files[split][1]

    def paths(self, split):
        self.check_split(split)
        return self._files[split][0]

    def groups(self, split):
        self.check_split(split)
        return self._groups.get(split)

    def _records(self, paths, labels):
        return tf.data.Dataset.from_tensor_slices(
            {
                "encoded": tf.constant(paths, tf.string, shape=[len(paths)]),
                "label": tf.constant(labels, tf.int64, shape=[len(labels)]),
            }
        )

    def records(self, split):
        self.check_split(split)
        return self._records(*self._files[split])

    def take(self, split, indices):
        paths, labels = self._files[split]
        return self._records([paths[i] for i in indices], labels[indices])

    def decode(self, encoded):
        return decode_file(
            encoded, self.info.channels, self.info.high_depth, self._window, self._numpy_files
        )

    def fingerprint(self):
        digest = hashlib.sha1(self.info.name.encode())
        for split, (paths, labels) in sorted(self._files.items()):
            for path, label in zip(paths, labels):
                stat = os.stat(path)
                digest.update(f"{split}|{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return digest.hexdigest()
