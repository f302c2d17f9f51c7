"""Datasets as ordered streams of encoded records, by name. Adding a source is one module here
and one line in SOURCES.

A source yields records {"encoded": ..., "label": int64} in a fixed order, and
decodes a record into a uint8 image (H, W, C). Records stay encoded (PNG bytes
or file paths) until the parallel map, so caching and shuffling stay cheap.

--dataset=PREFIX:SPEC picks SOURCES[PREFIX] (e.g. folder:/data/xrays); a name without a
known prefix is a tfds dataset (mnist, fashion_mnist, cifar10, ...).
"""

import dataclasses
import importlib
import re

from tfssl.errors import DataError

SOURCES = {
    "folder": "tfssl.data.sources.folder:FolderSource",
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

    @property
    def channels(self):
        return self.image_shape[-1]


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """How to read a dataset, from the run's flags."""

    data_dir: str = ""  # tfds data_dir ("" = tfds' default)
    skip_corrupt_images: bool = False


def load_source(name, options=SourceOptions()):
    """The source of --dataset=name: SOURCES[prefix] for "prefix:spec", else tfds."""
    prefix, _, spec = name.partition(":")
    path = SOURCES.get(prefix) if spec else None
    if path is None:
        path, spec = TFDS, name
    module_name, class_name = path.split(":")
    return getattr(importlib.import_module(module_name), class_name)(spec, options)


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
