"""Datasets as ordered streams of encoded records, by name. Adding a source is one module here
and one line in SOURCES.

A source serves whole splits (tfssl/data/sources/base.py): records {"encoded": ..., "label":
int64} in a fixed order, their labels, and `decode`, which turns a record into a uint8 image
(H, W, C), or uint16 for high-bit-depth data. Records stay encoded (PNG bytes or file paths)
until the parallel map. Split slices (train[:80%]) are cut the same way for every source, by
tfssl/data/splits.py; load_source returns the source seen through them.

--dataset=PREFIX:SPEC picks SOURCES[PREFIX] (e.g. folder:/data/xrays); a name without a
known prefix is a tfds dataset (mnist, fashion_mnist, cifar10, ...).
"""

import dataclasses
import importlib

from tfssl.data.splits import SlicedSource, parse_split  # noqa: F401  (parse_split: public)

SOURCES = {
    "folder": "tfssl.data.sources.folder:FolderSource",
    "csv": "tfssl.data.sources.csv:CsvSource",
    "npz": "tfssl.data.sources.npz:NpzSource",
    "synthetic": "tfssl.data.sources.synthetic:SyntheticSource",
}
TFDS = "tfssl.data.sources.tfds:TfdsSource"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    image_shape: tuple  # (H, W, C); H and W are None when sizes vary
    split_sizes: dict
    class_names: tuple = ()
    high_depth: bool = False  # decode gives uint16 (16-bit or DICOM data), else uint8
    image_sizes: tuple = ()  # ((height, width, count), ...) when sizes vary

    @property
    def channels(self):
        return self.image_shape[-1]


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """How to read a dataset, from the run's flags."""

    data_dir: str = ""  # tfds data_dir ("" = tfds' default)
    skip_corrupt_images: bool = False
    split_seed: int = 0  # the order that split slices cut (tfssl/data/splits.py)
    intensity_window: tuple = ()  # (LOW, HIGH) for high-bit-depth images; () = per-image min-max
    folder_groups: bool = False  # a group level in folders: root/[<split>/]<class>/<group>/<image>


def load_source(name, options=SourceOptions()):
    """The source of --dataset=name (SOURCES[prefix] for "prefix:spec", else tfds), seen through
    split slices."""
    prefix, _, spec = name.partition(":")
    path = SOURCES.get(prefix) if spec else None
    if path is None:
        path, spec = TFDS, name
    module_name, class_name = path.split(":")
    source = getattr(importlib.import_module(module_name), class_name)(spec, options)
    return SlicedSource(source, options.split_seed)
