"""Image folders: root/<class>/<image>, or root/<split>/<class>/<image>; with --folder_groups a
group level (e.g. the patient) under each class: root/[<split>/]<class>/<group>/<image>.

The split level is there when every folder under root holds only folders (with --folder_groups:
only folders of folders), so the two layouts of one depth are told apart by the flag alone, never
guessed. A group is named by its folder: the same name under two class folders is one group
(a patient with images of two classes).
"""

import os

from tfssl.data.sources import SourceOptions
from tfssl.data.sources.files import FileSource
from tfssl.data.sources.images import IMAGE_EXTENSIONS
from tfssl.errors import DataError


def _subdirs(path):
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))


def _images(path):
    names = sorted(os.listdir(path)) if os.path.isdir(path) else []
    return [os.path.join(path, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]


class FolderSource(FileSource):
    """root/<split>/<class>/<image>, or root/<class>/<image> as a single 'train' split (with
    --folder_groups, a <group> folder above each image). Images are PNG, JPEG, BMP, GIF, TIFF or
    DICOM (tfssl/data/sources/images.py)."""

    def __init__(self, root, options=SourceOptions()):
        if not os.path.isdir(root):
            raise DataError(f"folder dataset {root} does not exist or is not a directory")
        self.root = root
        grouped = options.folder_groups
        group_level = "<group>/" if grouped else ""
        subdirs = _subdirs(root)
        if not subdirs:
            layout = f"<class>/{group_level}<image>"
            raise DataError(
                f"folder dataset {root} has no class sub-folders; lay it out as "
                f"{root}/{layout} or {root}/<split>/{layout}"
            )
        levels = 2 if grouped else 1
        has_split_level = all(self._is_split_dir(os.path.join(root, d), levels) for d in subdirs)
        split_dirs = (
            {d: os.path.join(root, d) for d in subdirs} if has_split_level else {"train": root}
        )
        class_names = sorted({c for path in split_dirs.values() for c in _subdirs(path)})
        files, groups = {}, {}
        for split, path in split_dirs.items():
            paths, labels, split_groups = [], [], []
            for label, class_name in enumerate(class_names):
                class_dir = os.path.join(path, class_name)
                if grouped:
                    images, names = self._grouped_images(class_dir)
                else:
                    images = _images(class_dir)
                if not images and split == "train":
                    raise DataError(
                        f"class folder {class_dir} holds no images{' in group folders' * grouped} "
                        f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder"
                    )
                paths += images
                labels += [label] * len(images)
                if grouped:
                    split_groups += names
            files[split] = (paths, labels)
            groups[split] = split_groups
        if list(files) == ["train"]:
            self.split_hint = " (e.g. --train_split=train[:80%] --eval_split=train[80%:])"
        elif not grouped and "train" not in files:
            self.split_hint = (
                " (slices such as train[:90%] work too; a root/<class>/<group>/<image> folder "
                "needs --folder_groups)"
            )
        super().__init__(f"folder:{root}", files, class_names, options, groups if grouped else None)

    @staticmethod
    def _grouped_images(class_dir):
        """(image paths, their group names) of class_dir/<group>/<image>."""
        if not os.path.isdir(class_dir):
            return [], []
        loose = _images(class_dir)
        if loose:
            raise DataError(
                f"with --folder_groups, {loose[0]} must be in a group folder: "
                f"{class_dir}/<group>/<image>"
            )
        images, names = [], []
        for group in _subdirs(class_dir):
            found = _images(os.path.join(class_dir, group))
            images += found
            names += [group] * len(found)
        return images, names

    @staticmethod
    def _is_split_dir(path, levels=1):
        """Whether path holds only folders, `levels` deep (a split folder of class folders)."""
        children = [os.path.join(path, c) for c in os.listdir(path)]
        if not children or not all(os.path.isdir(c) for c in children):
            return False
        return levels == 1 or all(FolderSource._is_split_dir(c, levels - 1) for c in children)
