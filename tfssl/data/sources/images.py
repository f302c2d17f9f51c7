"""Image files: PNG, JPEG, BMP, GIF (8-bit; PNG also 16-bit), TIFF (tifffile) and DICOM (pydicom).

Every file is checked once when a dataset is opened (`probe`): channels, size and bit depth. A
dataset is 8-bit (images stay uint8, scaled by 1/255) or high bit depth (16-bit PNG, 16-bit or
float TIFF, DICOM). High-bit-depth images are mapped to [0, 1] per image by min-max, or with
--intensity_window=LOW,HIGH by a fixed window (values outside are clipped), and kept as uint16
(x * 65535), so no precision is lost to an 8-bit cut. DICOM files apply their own rescale and
window first (tfssl/data/sources/dicom.py).
"""

import dataclasses
import os
import struct

import numpy as np
import tensorflow as tf

from tfssl.errors import DataError

NATIVE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TIFF_EXTENSIONS = (".tif", ".tiff")
DICOM_EXTENSIONS = (".dcm", ".dicom")
IMAGE_EXTENSIONS = NATIVE_EXTENSIONS + TIFF_EXTENSIONS + DICOM_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class ImageProperties:
    channels: int
    height: int
    width: int
    high_depth: bool  # 16-bit or float pixels, or DICOM


def extension(path):
    return os.path.splitext(path)[1].lower()


def _png_header(path):
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, colour


def _tiff_array(path):
    try:
        import tifffile
    except ImportError:
        raise DataError(
            f"reading {path} needs tifffile: pip install 'tfssl[medical]' (or tifffile)"
        ) from None
    array = np.asarray(tifffile.imread(path))
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{path} holds {array.shape[0]} pages or frames; 3-D TIFF is not supported yet"
        )
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise DataError(f"{path} has shape {array.shape}; expected a 2-D image")
    return array[..., :3] if array.shape[-1] == 4 else array


def probe(path):
    """The ImageProperties of one image file; raises on an unreadable or truncated file."""
    ext = extension(path)
    if ext in TIFF_EXTENSIONS:
        array = _tiff_array(path)
        return ImageProperties(
            1 if array.shape[-1] == 1 else 3, *array.shape[:2], array.dtype != np.uint8
        )
    if ext in DICOM_EXTENSIONS:
        from tfssl.data.sources import dicom

        return ImageProperties(*dicom.properties(path))
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        channels = 1 if im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "F") else 3
        high_depth = im.mode in ("I", "I;16", "I;16B", "F")
        if ext == ".png":
            _, _, depth, colour = _png_header(path)
            high_depth = depth == 16
            channels = 1 if colour in (0, 4) else 3
        return ImageProperties(channels, im.height, im.width, high_depth)


def map_intensity(image, window=None):
    """Float pixels to [0, 1]: (x - LOW) / (HIGH - LOW) clipped, or per-image min-max (a constant
    image maps to 0)."""
    image = tf.cast(image, tf.float32)
    if window:
        low, high = window
        return tf.clip_by_value((image - low) / (high - low), 0.0, 1.0)
    low, high = tf.reduce_min(image), tf.reduce_max(image)
    return tf.math.divide_no_nan(image - low, high - low)


def to_uint16(unit_image):
    """[0, 1] floats as uint16 (x * 65535, rounded)."""
    return tf.cast(tf.round(tf.clip_by_value(unit_image, 0.0, 1.0) * 65535.0), tf.uint16)


def _numpy_reader(channels, high_depth, window):
    """path -> image array for the files tf.io cannot decode (TIFF, DICOM): float32 in [0, 1]
    for a high-bit-depth dataset (DICOM), raw float32 pixels (TIFF), or uint8."""

    def read(path):
        path = path.item() if isinstance(path, np.ndarray) else path
        path = path.decode() if isinstance(path, bytes) else str(path)
        if extension(path) in DICOM_EXTENSIONS:
            from tfssl.data.sources import dicom

            image = dicom.read(path, window)
        else:
            image = _tiff_array(path)
        if image.shape[-1] != channels:
            image = np.repeat(image, 3, -1) if channels == 3 else image[..., :1]
        return image.astype(np.float32 if high_depth else np.uint8)

    return read


def _with_channels(image, channels):
    """A uint8 image of any channel count (BMP and GIF decode only to their own) with 1 or 3."""
    count = tf.shape(image)[-1]
    if channels == 3:
        return tf.cond(
            count >= 3, lambda: image[..., :3], lambda: tf.image.grayscale_to_rgb(image[..., :1])
        )

    def gray():
        return tf.saturate_cast(
            tf.round(tf.image.rgb_to_grayscale(tf.cast(image[..., :3], tf.float32))), tf.uint8
        )

    return tf.cond(count >= 3, gray, lambda: image[..., :1])


def decode_file(path, channels, high_depth, window=None, has_numpy_files=True):
    """A graph op: the image at `path` as uint8 (8-bit dataset) or uint16 (high bit depth)."""
    read = _numpy_reader(channels, high_depth, window)
    dtype = tf.float32 if high_depth else tf.uint8

    def by_numpy():
        image = tf.numpy_function(read, [path], dtype, stateful=False)
        if high_depth:
            is_dicom = tf.strings.regex_full_match(tf.strings.lower(path), r".*\.(dcm|dicom)")
            image = tf.cond(is_dicom, lambda: image, lambda: map_intensity(image, window))
        return tf.ensure_shape(image, [None, None, channels])

    def by_tf():
        contents = tf.io.read_file(path)
        if not high_depth:
            return tf.cond(
                tf.strings.regex_full_match(tf.strings.lower(path), r".*\.(bmp|gif)"),
                lambda: _with_channels(
                    tf.io.decode_image(contents, expand_animations=False), channels
                ),
                lambda: tf.io.decode_image(contents, channels=channels, expand_animations=False),
            )
        image = tf.io.decode_png(contents, channels=channels, dtype=tf.uint16)
        return map_intensity(image, window)

    if not has_numpy_files:
        image = by_tf()
    else:
        native = tf.strings.regex_full_match(tf.strings.lower(path), r".*\.(png|jpe?g|bmp|gif)")
        image = tf.cond(native, by_tf, by_numpy)
    image = tf.ensure_shape(image, [None, None, channels])
    return to_uint16(image) if high_depth else image


def decode_array(image, high_depth, window=None):
    """An in-memory image (npz, synthetic) as uint8, or uint16 after the intensity mapping."""
    if not high_depth:
        return image
    return to_uint16(map_intensity(image, window))
