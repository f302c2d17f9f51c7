"""Decode once: a split's images, decoded and resized, as one array (--cache_dataset).

The array holds every image of the split at --image_size, uint8 for 8-bit data and uint16 for
high-bit-depth data (after its intensity mapping, x * 65535: 16-bit precision kept, half the
memory of float32). It lives in memory, or with --cache_dir in an .npy file there (read through a
memory map, so sets larger than RAM work); the file's name is a hash of the data (file names,
sizes and dates), the split, the split seed, the size and the intensity window, so a later run on
the same data reuses it and any change makes a new one. After this one pass, training and
evaluation read no image file.
"""

import hashlib
import logging
import os
import time

import numpy as np
import tensorflow as tf

from tfssl.errors import DataError

log = logging.getLogger("tfssl")
FORMAT_VERSION = 1


def cache_key(source, split, image_size, options):
    text = "|".join(
        str(v)
        for v in (
            FORMAT_VERSION,
            source.fingerprint(),
            split,
            options.split_seed,
            image_size,
            options.intensity_window,
        )
    )
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _fill(array, records, decode, batch_size=256):
    """Writes decode(record) of every record into array, in order."""
    ds = records.map(
        lambda r: decode(r["encoded"]), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    position = 0
    try:
        for batch in ds.batch(batch_size).prefetch(2):
            array[position : position + len(batch)] = batch.numpy()
            position += len(batch)
    except tf.errors.OpError as e:
        message = (e.message or type(e).__name__).strip().splitlines()[0]
        raise DataError(f"cannot decode an image: {message[:300]}") from None
    if position != len(array):
        raise DataError(f"the split gave {position} images, not the {len(array)} expected")


def decode_split(source, split, decode, shape, dtype, cache_dir="", key=""):
    """The (N, *shape) array of a split's decoded images, from cache_dir/<key>.npy when there."""
    count = source.num_examples(split)
    full_shape = (count, *shape)
    start = time.time()
    if cache_dir:
        path = os.path.join(cache_dir, f"{key}.npy")
        if os.path.exists(path):
            array = np.load(path, mmap_mode="r")
            if array.shape == full_shape and array.dtype == dtype:
                log.info("decoded images of %s: read from %s", split, path)
                return array
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        array = np.lib.format.open_memmap(tmp, "w+", dtype, full_shape)
        _fill(array, source.records(split), decode)
        array.flush()
        del array
        os.replace(tmp, path)
        array = np.load(path, mmap_mode="r")
        where = path
    else:
        array = np.empty(full_shape, dtype)
        _fill(array, source.records(split), decode)
        where = "memory"
    log.info(
        "decoded %d images of %s once (%.0f MB, %s) in %.1f s",
        count,
        split,
        array.nbytes / 2**20,
        where,
        time.time() - start,
    )
    return array


def gather(array, indices, dtype):
    """A graph op: array[indices] (a numpy array or memory map), without copying it into the
    graph."""
    images = tf.numpy_function(
        lambda i: np.ascontiguousarray(array[np.asarray(i)]), [indices], dtype, stateful=False
    )
    return tf.ensure_shape(images, [None, *array.shape[1:]])
