"""The notebook's helpers (tfssl/notebook.py): zips and folders of your images, run directories,
versions, and the tables and listings it shows."""

import json
import os
import zipfile

import pytest

from tests.conftest import class_pattern_images, write_image_folder
from tfssl import notebook
from tfssl.data.sources import load_source


def zip_folder(folder, path, extra=()):
    """Zips folder as people do: its own name at the top, plus `extra` (name, bytes) entries."""
    with zipfile.ZipFile(path, "w") as archive:
        for directory, _, files in os.walk(folder):
            for name in sorted(files):
                full = os.path.join(directory, name)
                archive.write(full, os.path.relpath(full, os.path.dirname(folder)))
        for name, data in extra:
            archive.writestr(name, data)
    return str(path)


def test_a_zip_of_one_folder_with_splits_keeps_them(tmp_path):
    """The issue's case: xray.zip holds xray/train/<class> and xray/test/<class>; it must read as
    those splits and classes, not as a split named xray with classes train and test."""
    images, labels = class_pattern_images(num_classes=2, per_class=3)
    folder = tmp_path / "source" / "xray"
    write_image_folder(str(folder), images, labels, "train", ["normal", "pneumonia"])
    write_image_folder(str(folder), images[:4], labels[:4], "test", ["normal", "pneumonia"])
    extra = [("__MACOSX/xray/._x.png", b"resource fork"), ("xray/.DS_Store", b"finder")]
    path = zip_folder(str(folder), tmp_path / "xray.zip", extra)
    dataset, train, evaluation = notebook.prepare_images(path, str(tmp_path / "data"))
    assert dataset == f"folder:{tmp_path / 'data' / 'xray_unzipped' / 'xray'}"
    assert (train, evaluation) == ("train", "test")
    info = load_source(dataset).info
    assert info.class_names == ("normal", "pneumonia")
    assert info.split_sizes == {"test": 4, "train": 6}


def test_a_folder_of_classes_gets_a_stratified_held_out_split(tmp_path):
    images, labels = class_pattern_images(num_classes=3, per_class=10)
    folder = write_image_folder(str(tmp_path / "mine"), images, labels)
    dataset, train, evaluation = notebook.prepare_images(folder, str(tmp_path / "data"))
    root = dataset.partition(":")[2]
    assert root == str(tmp_path / "data" / "mine") and (train, evaluation) == ("train", "test")
    seen = []
    for name in ("class0", "class1", "class2"):
        held_out = os.listdir(os.path.join(root, "test", name))
        kept = os.listdir(os.path.join(root, "train", name))
        assert (len(held_out), len(kept)) == (2, 8)  # a fifth of each class
        assert not set(held_out) & set(kept)
        assert sorted(held_out + kept) == sorted(os.listdir(os.path.join(folder, name)))
        seen += held_out
    again = notebook.split_for_evaluation(folder, str(tmp_path / "again"), "mine")
    held_out_again = [
        name for c in ("class0", "class1", "class2") for name in os.listdir(f"{again}/test/{c}")
    ]
    assert sorted(held_out_again) == sorted(seen)  # the same fifth on every run
    info = load_source(dataset).info
    assert info.split_sizes == {"test": 6, "train": 24} and info.num_classes == 3


def test_a_zip_is_extracted_once(tmp_path):
    images, labels = class_pattern_images(num_classes=2, per_class=2)
    folder = write_image_folder(str(tmp_path / "src" / "pets"), images, labels)
    path = zip_folder(folder, tmp_path / "pets.zip")
    root = notebook.unpack_zip(path, str(tmp_path / "data"))
    assert root == str(tmp_path / "data" / "pets_unzipped" / "pets")
    marker = os.path.join(root, "class0", "mine.txt")
    open(marker, "w").close()
    assert notebook.unpack_zip(path, str(tmp_path / "data")) == root and os.path.exists(marker)


def test_a_folder_with_train_and_val_is_evaluated_on_val(tmp_path):
    images, labels = class_pattern_images(num_classes=2, per_class=2)
    write_image_folder(str(tmp_path / "d"), images, labels, "train")
    write_image_folder(str(tmp_path / "d"), images, labels, "val")
    assert notebook.prepare_images(str(tmp_path / "d"), str(tmp_path / "data"))[2] == "val"


def test_work_dir_is_keyed_by_dataset_budget_and_size():
    assert notebook.work_dir("runs", "mnist", "small") == os.path.join("runs", "mnist-small")
    assert notebook.work_dir("r", "folder:/content/data/chest xray/", "gpu", 64) == os.path.join(
        "r", "chest_xray-gpu-64px"
    )
    names = {
        notebook.work_dir("r", d, b, s)
        for d in ("mnist", "fashion_mnist")
        for b in ("tiny", "small")
        for s in (0, 32)
    }
    assert len(names) == 8


@pytest.mark.parametrize(
    "installed, warned",
    [
        ({"tensorflow": "2.21.0", "keras": "3.15.1"}, []),
        ({"tensorflow": "2.22.1", "keras": "3.16.0"}, []),
        ({"tensorflow": "2.19.0", "keras": "3.15.1"}, ["tensorflow 2.19.0 is older than 2.21"]),
        ({"tensorflow": "2.21.0", "keras": "3.8.0"}, ["keras 3.8.0 is older than 3.15"]),
        ({"tensorflow": "2.21.0", "keras": None}, ["keras is not installed"]),
    ],
)
def test_version_warnings(installed, warned):
    warnings = notebook.version_warnings(installed, {"tensorflow": "2.21", "keras": "3.15"})
    assert len(warnings) == len(warned)
    assert all(w.startswith(expected) for w, expected in zip(warnings, warned))


def test_hyperparameter_table_reads_the_runs_files(tmp_path):
    for name, rate in (("a", 0.1), ("b", 0.05)):
        os.makedirs(tmp_path / name)
        json.dump(
            {"learning_rate": rate, "precision": "mixed_float16"},
            open(tmp_path / name / "flags.json", "w"),
        )
    json.dump(
        {"epochs": 2.5, "train_wall_time_s": 61.4, "device": "1 x Tesla T4"},
        open(tmp_path / "a" / "result.json", "w"),
    )
    table = notebook.hyperparameter_table(
        {"run a": str(tmp_path / "a"), "run b": str(tmp_path / "b")},
        ["learning_rate", "precision"],
    ).splitlines()
    assert table[0] == "| flag | run a | run b |"
    assert table[2] == "| `learning_rate` | 0.1 | 0.05 |"
    assert table[3] == "| `precision` | `mixed_float16` | `mixed_float16` |"
    assert table[4:] == [
        "| epochs | 2.5 |  |",
        "| train wall time (s) | 61 |  |",
        "| device | 1 x Tesla T4 |  |",
    ]


def test_source_markdown_shows_the_code_and_where_it_lives():
    from tfssl.losses.contrastive import nt_xent

    text = notebook.source_markdown(nt_xent)
    assert text.startswith("**`nt_xent`** (tfssl/losses/contrastive.py, line ")
    assert "```python\ndef nt_xent(" in text and text.endswith("```")


def test_fractions_too_small_for_a_folder_are_raised_to_one_image_per_class(tmp_path):
    images, labels = class_pattern_images(per_class=8, seed=0)  # 4 classes x 8 = 32 images
    write_image_folder(str(tmp_path), images, labels, "train")
    dataset = f"folder:{tmp_path}"
    # round(0.01 * 32 / 4) = 0 labels per class: raised to 4 / 32 = 0.125; round(0.1 * 8) = 1 stays.
    fractions, notes = notebook.usable_fractions([0.01, 0.1], dataset)
    assert fractions == [0.1, 0.125] and len(notes) == 1 and "0.01" not in notes[0]
    # Both too small: one fraction remains.
    assert notebook.usable_fractions([0.01, 0.02], dataset)[0] == [0.125]
    assert notebook.usable_fractions([0.01, 0.1], "mnist") == ([0.01, 0.1], [])
