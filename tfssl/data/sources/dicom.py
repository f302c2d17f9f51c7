"""DICOM files through pydicom (pip install 'tfssl[medical]').

A grayscale image becomes floats in [0, 1]:
1. modality values: x * RescaleSlope + RescaleIntercept;
2. --intensity_window=LOW,HIGH when given; else the file's VOI LUT; else its first
   WindowCenter/WindowWidth (VOILUTFunction LINEAR, LINEAR_EXACT or SIGMOID, DICOM PS3.3
   C.11.2.1.2); else per-image min-max;
3. MONOCHROME1 (low values bright) is inverted: 1 - y.
Colour images are scaled by 1 / (2^BitsStored - 1). Multi-frame (3-D) files are refused.
"""

import numpy as np

from tfssl.errors import DataError


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise DataError("reading DICOM needs pydicom: pip install 'tfssl[medical]'") from None
    return pydicom


def _dataset(path):
    dataset = _pydicom().dcmread(path)
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(f"{path} holds {frames} frames; 3-D DICOM is not supported yet")
    return dataset


def properties(path):
    """(channels, height, width, high_depth) of a DICOM file; reads its pixels once as a check."""
    dataset = _dataset(path)
    pixels = dataset.pixel_array
    channels = 3 if int(dataset.get("SamplesPerPixel", 1)) == 3 else 1
    return channels, pixels.shape[0], pixels.shape[1], True


def _first(value):
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def window(values, center, width, function="LINEAR"):
    """DICOM's VOI window as [0, 1] floats."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    width = max(width, 1.0)  # LINEAR requires width >= 1
    if width == 1.0:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _voi_lut(values, dataset):
    item = dataset.VOILUTSequence[0]
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536
    lut = np.asarray(item.LUTData, np.float64)[:entries]
    index = np.clip(np.round(values - first), 0, len(lut) - 1).astype(np.int64)
    return lut[index] / (2.0**bits - 1.0)


def read(path, user_window=None):
    """The image as float32 (H, W, C) in [0, 1] (see the module doc)."""
    dataset = _dataset(path)
    pixels = dataset.pixel_array.astype(np.float64)
    if int(dataset.get("SamplesPerPixel", 1)) == 3:
        bits = int(dataset.get("BitsStored", 8))
        photometric = str(dataset.get("PhotometricInterpretation", "RGB"))
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB").astype(np.float64)
        return (pixels / (2.0**bits - 1.0)).astype(np.float32)
    values = pixels * float(dataset.get("RescaleSlope", 1) or 1) + float(
        dataset.get("RescaleIntercept", 0) or 0
    )
    if user_window:
        low, high = user_window
        image = np.clip((values - low) / (high - low), 0.0, 1.0)
    elif "VOILUTSequence" in dataset:
        image = _voi_lut(values, dataset)
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:
        function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        image = window(values, _first(dataset.WindowCenter), _first(dataset.WindowWidth), function)
    else:
        low, high = values.min(), values.max()
        image = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        image = 1.0 - image
    return image[..., None].astype(np.float32)
