"""Image folders: root/<class>/<image>, or root/<split>/<class>/<image>."""

import os

from tfssl.data.sources import SourceOptions
from tfssl.data.sources.files import FileSource
from tfssl.data.sources.images import IMAGE_EXTENSIONS
from tfssl.errors import DataError


class FolderSource(FileSource):
    """root/<split>/<class>/<image>, or root/<class>/<image> as a single 'train' split. Images are
    PNG, JPEG, BMP, GIF, TIFF or DICOM (tfssl/data/sources/images.py)."""

    def __init__(self, root, options=SourceOptions()):
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
        files = {}
        for split, path in split_dirs.items():
            paths, labels = [], []
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
                paths += images
                labels += [label] * len(images)
            files[split] = (paths, labels)
        if list(files) == ["train"]:
            self.split_hint = " (e.g. --train_split=train[:80%] --eval_split=train[80%:])"
        super().__init__(f"folder:{root}", files, class_names, options)

    @staticmethod
    def _is_split_dir(path):
        children = [os.path.join(path, c) for c in os.listdir(path)]
        return bool(children) and all(os.path.isdir(c) for c in children)
