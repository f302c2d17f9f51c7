"""Image formats (16-bit PNG, TIFF, DICOM), npz and csv sources, and mixed sizes."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import class_pattern_images, tiny_config, write_image_folder
from tfssl.data.pipeline import DataBundle
from tfssl.data.sources import SourceOptions, load_source
from tfssl.errors import DataError

RAW = np.array([[0, 300, 301], [1000, 4000, 65535]], np.uint16)


def decoded_floats(source, split="train"):
    """Every image of a split through the source's decode, as floats in [0, 1]."""
    return [
        tf.image.convert_image_dtype(source.decode(r["encoded"]), tf.float32).numpy()
        for r in source.records(split)
    ]


def one_image_folder(tmp_path, filename, write):
    path = tmp_path / "data" / "cls" / filename
    path.parent.mkdir(parents=True)
    write(str(path))
    return str(tmp_path / "data")


def test_16_bit_png_keeps_its_full_range(tmp_path):
    root = one_image_folder(tmp_path, "x.png", lambda p: Image.fromarray(RAW).save(p))
    source = load_source(f"folder:{root}")
    assert source.info.high_depth
    image = decoded_floats(source)[0][..., 0]
    expected = RAW / 65535.0  # per-image min-max: min 0, max 65535
    np.testing.assert_allclose(image, expected, atol=0.5 / 65535)
    assert image[0, 1] != image[0, 2]  # 300 and 301: no 8-bit cut
    windowed = load_source(f"folder:{root}", SourceOptions(intensity_window=(100.0, 1100.0)))
    expected = np.clip((RAW.astype(float) - 100) / 1000, 0, 1)
    np.testing.assert_allclose(decoded_floats(windowed)[0][..., 0], expected, atol=0.5 / 65535)


def test_tiff_16_bit_and_float(tmp_path):
    import tifffile

    root = one_image_folder(tmp_path, "x.tif", lambda p: tifffile.imwrite(p, RAW))
    tifffile.imwrite(str(tmp_path / "data" / "cls" / "y.tiff"), RAW.astype(np.float32) / 7)
    images = decoded_floats(load_source(f"folder:{root}"))
    expected = (RAW - 0.0) / 65535
    for image in images:
        np.testing.assert_allclose(image[..., 0], expected, atol=0.5 / 65535)


def write_dicom(path, pixels, photometric="MONOCHROME1", frames=1, **elements):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for key, value in elements.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_rescale_window_and_monochrome1(tmp_path):
    raw = np.array([[0, 500, 512], [520, 700, 4095]], np.uint16)
    root = one_image_folder(
        tmp_path,
        "x.dcm",
        lambda p: write_dicom(
            p, raw, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400
        ),
    )
    # by hand: modality value v = 2 raw - 1024; DICOM's linear window; MONOCHROME1 inverted
    v = 2.0 * raw - 1024
    expected = 1 - np.clip((v - 39.5) / 399 + 0.5, 0, 1)
    image = decoded_floats(load_source(f"folder:{root}"))[0][..., 0]
    np.testing.assert_allclose(image, expected, atol=0.5 / 65535)
    assert 0 < image[1, 0] < 1  # inside the window: not cut to black or white


def test_dicom_without_window_is_min_max_and_3d_is_refused(tmp_path):
    raw = np.array([[10, 20], [30, 50]], np.uint16)
    root = one_image_folder(
        tmp_path, "x.dcm", lambda p: write_dicom(p, raw, photometric="MONOCHROME2")
    )
    image = decoded_floats(load_source(f"folder:{root}"))[0][..., 0]
    np.testing.assert_allclose(image, (raw - 10) / 40.0, atol=0.5 / 65535)
    write_dicom(str(tmp_path / "data" / "cls" / "v.dcm"), np.zeros((2, 2, 2)), frames=2)
    with pytest.raises(DataError, match="3-D DICOM is not supported yet"):
        load_source(f"folder:{root}")


def test_npz_source_with_medmnist_keys(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 10), ("val", 4), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, (n, 1))
    path = str(tmp_path / "x.npz")
    np.savez(path, **arrays)
    source = load_source(f"npz:{path}")
    assert source.info.image_shape == (8, 8, 1) and source.info.num_classes == 3
    assert source.info.split_sizes == {"train": 10, "val": 4, "test": 6}
    np.testing.assert_array_equal(source.labels("val"), arrays["val_labels"][:, 0])
    first = source.decode(next(iter(source.records("test")))["encoded"]).numpy()
    np.testing.assert_array_equal(first[..., 0], arrays["test_images"][0])
    np.savez(path, train_images=arrays["train_images"], train_labels=rng.integers(0, 2, (10, 4)))
    with pytest.raises(DataError, match="multi-label is not supported yet"):
        load_source(f"npz:{path}")


def test_csv_source_names_splits_groups_and_relative_paths(tmp_path):
    images, labels = class_pattern_images(num_classes=2, per_class=3)
    (tmp_path / "img").mkdir()
    rows = ["path,label,split,group"]
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image[..., 0]).save(tmp_path / "img" / f"{i}.png")
        name = ["malignant", "benign"][label]
        rows.append(f"img/{i}.png,{name},{'test' if i % 3 == 0 else 'train'},p{i // 2}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    source = load_source(f"csv:{tmp_path / 'list.csv'}")
    assert source.info.class_names == ("benign", "malignant")
    assert source.info.split_sizes == {"test": 2, "train": 4}
    assert source.labels("train").tolist() == [1, 1, 0, 0]
    assert source.groups("train").tolist() == ["p0", "p1", "p2", "p2"]
    (tmp_path / "ints.csv").write_text("path,label\nimg/0.png,1\nimg/1.png,0\n")
    ints = load_source(f"csv:{tmp_path / 'ints.csv'}")
    assert ints.labels("train").tolist() == [1, 0] and ints.groups("train") is None
    (tmp_path / "bad.csv").write_text("file,y\nimg/0.png,1\n")
    with pytest.raises(DataError, match="needs the columns path,label"):
        load_source(f"csv:{tmp_path / 'bad.csv'}")


def test_mixed_sizes_need_image_size_and_are_resized(tmp_path):
    images, labels = class_pattern_images(num_classes=2, per_class=2)
    root = write_image_folder(str(tmp_path / "mixed"), images, labels)
    constant = np.full((20, 12), 200, np.uint8)
    Image.fromarray(constant).save(os.path.join(root, "class1", "wide.png"))
    cfg = tiny_config(dataset=f"folder:{root}", eval_split="train")
    with pytest.raises(DataError, match=r"16x16 \(4\), 20x12 \(1\).*--image_size=16"):
        DataBundle(cfg, str(tmp_path / "run"))
    bundle = DataBundle(cfg.replace(image_size=16), str(tmp_path / "run"))
    batch, _ = next(iter(bundle.eval_batches(lambda image: image, 8)))
    assert batch.shape == (5, 16, 16, 1)
    np.testing.assert_allclose(batch[-1].numpy(), 200 / 255, atol=1e-6)  # a constant stays one


def test_8_bit_formats_grayscale_and_colour(tmp_path):
    gray = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    for name in ("g.png", "g.bmp", "g.jpg"):
        (tmp_path / "gray" / "c").mkdir(parents=True, exist_ok=True)
        Image.fromarray(gray).save(tmp_path / "gray" / "c" / name)
    for name in ("c.bmp", "c.gif", "c.png"):
        (tmp_path / "rgb" / "c").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "rgb" / "c" / name)
    for folder, channels in (("gray", 1), ("rgb", 3)):
        source = load_source(f"folder:{tmp_path / folder}")
        assert source.info.image_shape == (8, 8, channels) and not source.info.high_depth
        for record in source.records("train"):
            image = source.decode(record["encoded"]).numpy()
            assert image.shape == (8, 8, channels) and image.dtype == np.uint8
            lossy = record["encoded"].numpy().endswith(b".jpg")
            np.testing.assert_allclose(image[..., 0], gray, atol=6 if lossy else 0)
