"""Datasets by tfds name or image folder, as ordered streams of encoded records.

A source yields records {"encoded": ..., "label": int64} in a fixed order, and
decodes a record into a uint8 image (H, W, C). Records stay encoded (PNG bytes
or file paths) until the parallel map, so caching and shuffling stay cheap.
"""

import dataclasses
import logging
import os
import re

import numpy as np
import tensorflow as tf

from tfssl.data import offline
from tfssl.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    image_shape: tuple  # (H, W, C); H and W are None when sizes vary
    split_sizes: dict
    class_names: tuple = ()

    @property
    def channels(self):
        return self.image_shape[-1]


def load_source(name, data_dir=None, skip_corrupt_images=False):
    if name.startswith("folder:"):
        return FolderSource(name[len("folder:") :], skip_corrupt_images)
    if name.startswith("synthetic:"):
        return SyntheticSource(name[len("synthetic:") :])
    return TfdsSource(name, data_dir)


class TfdsSource:
    """A tfds dataset; MNIST and Fashion-MNIST are prepared offline when needed."""

    def __init__(self, name, data_dir=None):
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

    def num_examples(self, split):
        try:
            return self.builder.info.splits[split].num_examples
        except Exception:
            raise DataError(
                f"dataset '{self.info.name}' has no split '{split}'; it has "
                f"{', '.join(self.info.split_sizes)} (slices such as train[:90%] work too)"
            ) from None

    def records(self, split):
        self.num_examples(split)
        ds = self.builder.as_dataset(
            split=split, shuffle_files=False, decoders={"image": self._tfds.decode.SkipDecoding()}
        )
        return ds.map(lambda ex: {"encoded": ex["image"], "label": ex["label"]})

    def decode(self, encoded):
        return self.builder.info.features["image"].decode_example(encoded)

    def labels(self, split):
        ds = self.records(split).map(lambda r: r["label"]).batch(65536)
        return (
            np.concatenate([b.numpy() for b in ds])
            if self.num_examples(split)
            else np.zeros([0], np.int64)
        )


def _image_properties(path):
    """(channels, height, width) of an image file; raises on a corrupt or truncated file."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        channels = 1 if im.mode in ("1", "L", "I", "I;16", "F") else 3
        return channels, im.height, im.width


def parse_split(split):
    """'train[10%:50%]' -> ('train', 0.1, 0.5, 'percent');
    'train[:100]' -> ('train', None, 100, 'count')."""
    match = re.fullmatch(r"(\w+)(?:\[(-?\d*)(%?):(-?\d*)(%?)\])?", split)
    if not match:
        raise DataError(
            f"cannot read split '{split}'; write e.g. train, or train[:80%], or train[100:]"
        )
    name, start, start_pct, stop, stop_pct = match.groups()
    return name, start, stop, bool(start_pct or stop_pct)


class FolderSource:
    """root/<split>/<class>/<image>, or root/<class>/<image> as a single 'train' split."""

    def __init__(self, root, skip_corrupt_images=False):
        if not os.path.isdir(root):
            raise DataError(f"folder dataset {root} does not exist or is not a directory")
        self.root = root
        subdirs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        if not subdirs:
            raise DataError(
                f"folder dataset {root} has no class sub-folders; lay it out as "
                f"{root}/<class>/<image> or {root}/<split>/<class>/<image>"
            )
        has_split_level = all(self._is_split_dir(os.path.join(root, d)) for d in subdirs)
        split_dirs = (
            {d: os.path.join(root, d) for d in subdirs} if has_split_level else {"train": root}
        )
        class_names = sorted(
            {
                c
                for path in split_dirs.values()
                for c in os.listdir(path)
                if os.path.isdir(os.path.join(path, c))
            }
        )
        self._files = {}
        properties = {}
        for split, path in split_dirs.items():
            files, labels = [], []
            for label, class_name in enumerate(class_names):
                class_dir = os.path.join(path, class_name)
                names = sorted(os.listdir(class_dir)) if os.path.isdir(class_dir) else []
                images = [
                    os.path.join(class_dir, n)
                    for n in names
                    if n.lower().endswith(IMAGE_EXTENSIONS)
                ]
                if not images and split == "train":
                    raise DataError(
                        f"class folder {class_dir} holds no images "
                        f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder"
                    )
                for image_path in images:
                    try:
                        properties[image_path] = _image_properties(image_path)
                    except Exception as e:
                        if not skip_corrupt_images:
                            raise DataError(
                                f"cannot read image {image_path} ({type(e).__name__}); "
                                "remove it or pass --skip_corrupt_images"
                            ) from None
                        logging.warning("skipping unreadable image %s", image_path)
                        continue
                    files.append(image_path)
                    labels.append(label)
            self._files[split] = (files, np.asarray(labels, np.int64))
        channel_sets = {}
        for path, (channels, _, _) in properties.items():
            channel_sets.setdefault(channels, path)
        if len(channel_sets) > 1:
            raise DataError(
                f"folder dataset mixes grayscale ({channel_sets[1]}) and colour "
                f"({channel_sets[3]}) images; convert them all to one mode"
            )
        sizes = {(h, w) for _, h, w in properties.values()}
        height, width = sizes.pop() if len(sizes) == 1 else (None, None)
        self.info = DatasetInfo(
            name=f"folder:{root}",
            num_classes=len(class_names),
            image_shape=(height, width, next(iter(channel_sets))),
            split_sizes={k: len(v[0]) for k, v in self._files.items()},
            class_names=tuple(class_names),
        )

    @staticmethod
    def _is_split_dir(path):
        children = [os.path.join(path, c) for c in os.listdir(path)]
        return bool(children) and all(os.path.isdir(c) for c in children)

    def _slice(self, split):
        name, start, stop, is_percent = parse_split(split)
        if name not in self._files:
            hint = (
                " (e.g. --train_split=train[:80%] --eval_split=train[80%:])"
                if list(self._files) == ["train"]
                else ""
            )
            raise DataError(
                f"folder dataset {self.root} has no split '{name}'; it has "
                f"{', '.join(self._files)}{hint}"
            )
        files, labels = self._files[name]
        n = len(files)

        def to_index(v):
            if v in (None, ""):
                return None
            return round(int(v) * n / 100) if is_percent else int(v)

        selection = slice(to_index(start), to_index(stop))
        return files[selection], labels[selection]

    def num_examples(self, split):
        return len(self._slice(split)[0])

    def records(self, split):
        files, labels = self._slice(split)
        return tf.data.Dataset.from_tensor_slices(
            {"encoded": tf.constant(files, tf.string), "label": tf.constant(labels, tf.int64)}
        )

    def decode(self, encoded):
        image = tf.io.decode_image(
            tf.io.read_file(encoded), channels=self.info.channels, expand_animations=False
        )
        return tf.ensure_shape(image, self.info.image_shape)

    def labels(self, split):
        return self._slice(split)[1]


class SyntheticSource:
    """synthetic:HxWxC: random uint8 images and labels held in memory, for benchmarks and smoke
    tests."""

    SPLITS = {"train": 2048, "test": 512}
    NUM_CLASSES = 10

    def __init__(self, spec):
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
