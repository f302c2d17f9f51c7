"""Image folders: root/<class>/<image>, or root/<split>/<class>/<image>."""

import logging
import os

import numpy as np
import tensorflow as tf

from tfssl.data.sources import DatasetInfo, SourceOptions, parse_split
from tfssl.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _image_properties(path):
    """(channels, height, width) of an image file; raises on a corrupt or truncated file."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        channels = 1 if im.mode in ("1", "L", "I", "I;16", "F") else 3
        return channels, im.height, im.width


class FolderSource:
    """root/<split>/<class>/<image>, or root/<class>/<image> as a single 'train' split."""

    def __init__(self, root, options=SourceOptions()):
        skip_corrupt_images = options.skip_corrupt_images
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
