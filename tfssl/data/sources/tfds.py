"""tfds datasets by name; MNIST and Fashion-MNIST are prepared offline when needed.

Whole splits only: slices (train[:10%]) are cut by tfssl/data/splits.py from the split's labels,
read once, not by tfds' own split strings.
"""

import numpy as np

from tfssl.data import offline
from tfssl.data.sources import DatasetInfo, SourceOptions
from tfssl.data.sources.base import Source
from tfssl.errors import DataError

# (fingerprint, split) -> labels: a prepared tfds split does not change while a process runs.
_LABELS = {}


class TfdsSource(Source):
    """A tfds dataset; MNIST and Fashion-MNIST are prepared offline when needed."""

    def __init__(self, name, options=SourceOptions()):
        data_dir = options.data_dir
        import tensorflow_datasets as tfds

        self._tfds = tfds
        try:
            self.builder = tfds.builder(name, data_dir=data_dir or None)
        except Exception as e:  # DatasetNotFoundError and friends
            raise DataError(
                f"unknown dataset '{name}': use a tfds name (mnist, fashion_mnist, cifar10, ...) "
                f"or folder:/path/to/images ({type(e).__name__})"
            ) from None
        if not self.builder.is_prepared():
            self._prepare(name, data_dir)
        features = self.builder.info.features
        if "image" not in features or "label" not in features:
            raise DataError(
                f"dataset '{name}' has no 'image' and 'label' features; it is not an "
                "image classification dataset"
            )
        self.info = DatasetInfo(
            name=name,
            num_classes=features["label"].num_classes,
            image_shape=tuple(features["image"].shape),
            split_sizes={k: v.num_examples for k, v in self.builder.info.splits.items()},
            class_names=tuple(features["label"].names),
        )

    def _prepare(self, name, data_dir):
        if offline.prepare(name, data_dir):
            self.builder = self._tfds.builder(name, data_dir=data_dir or None)
            return
        try:
            self.builder.download_and_prepare()
        except Exception as e:
            hint = offline.offline_install_hint(name)
            fix = (
                f"install it offline with `{hint}`"
                if hint
                else "check the internet connection or --data_dir"
            )
            raise DataError(
                f"dataset '{name}' is not prepared in {self.builder.data_dir} and could not be "
                f"downloaded: {fix} ({type(e).__name__})"
            ) from None

    def records(self, split):
        self.check_split(split)
        ds = self.builder.as_dataset(
            split=split, shuffle_files=False, decoders={"image": self._tfds.decode.SkipDecoding()}
        )
        return ds.map(lambda ex: {"encoded": ex["image"], "label": ex["label"]})

    def decode(self, encoded):
        return self.builder.info.features["image"].decode_example(encoded)

    def labels(self, split):
        """The split's labels, read once per process (the images are not decoded): a compare
        command opens the dataset for each of its runs, and MNIST's take seconds to read."""
        key = (self.fingerprint(), split)
        if key not in _LABELS:
            ds = self.records(split).map(lambda r: r["label"]).batch(65536)
            batches = [b.numpy() for b in ds]
            labels = np.concatenate(batches) if batches else np.zeros([0], np.int64)
            labels.flags.writeable = False
            _LABELS[key] = labels
        return _LABELS[key]

    def fingerprint(self):
        return f"{self.info.name}|{self.builder.data_dir}"
