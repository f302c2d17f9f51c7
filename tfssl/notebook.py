"""Helpers of the Colab assignment notebook (colab/tfssl_assignment.ipynb): the versions it runs
on, its image folders and zips, its run directories, and the tables and code listings it shows.

Nothing here trains: the notebook calls tfssl.run for that.
"""

import inspect
import json
import math
import os
import re
import shutil
import zipfile

import numpy as np

#: Names a zip or a folder may hold beside the images, which are not classes (macOS, Windows).
IGNORED_NAMES = ("__MACOSX", "Thumbs.db", "desktop.ini")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
EVAL_SPLIT_NAMES = ("test", "val", "validation", "valid")


def _version_tuple(version):
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def version_warnings(installed, tested):
    """One warning line per package of `tested` ({name: "major.minor"}) whose `installed` version
    ({name: version or None}) is older, or missing."""
    warnings = []
    for name, minimum in tested.items():
        version = installed.get(name)
        if version is None:
            warnings.append(f"{name} is not installed; tfssl needs it (tested with {minimum})")
        elif _version_tuple(version) < _version_tuple(minimum):
            warnings.append(
                f"{name} {version} is older than {minimum}, which tfssl is tested with; if a cell "
                f"fails, `pip install '{name}>={minimum}'` and restart the runtime"
            )
    return warnings


def installed_versions(names):
    """{name: version or None} of installed distributions, without importing them."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _visible(path):
    return sorted(
        name for name in os.listdir(path) if not name.startswith(".") and name not in IGNORED_NAMES
    )


def _only_folders(path):
    names = _visible(path)
    return bool(names) and all(os.path.isdir(os.path.join(path, n)) for n in names)


def image_root(path):
    """The folder under `path` that holds the classes (or the splits): a zip of a folder holds that
    one folder at its top, perhaps inside another, so single folders of folders are stepped
    into."""
    while True:
        names = _visible(path)
        if len(names) != 1 or not _only_folders(os.path.join(path, names[0])):
            return path
        path = os.path.join(path, names[0])


def has_splits(root):
    """Whether root is laid out root/<split>/<class>/<image> (every folder holds only folders)."""
    return _only_folders(root) and all(_only_folders(os.path.join(root, n)) for n in _visible(root))


def unpack_zip(zip_path, data_root):
    """Extracts a zip once, into data_root/<zip name>_unzipped/, and returns the folder that holds
    its classes (or splits). A rerun finds it extracted."""
    name = os.path.splitext(os.path.basename(zip_path))[0]
    target = os.path.join(os.path.abspath(data_root), f"{name}_unzipped")
    done = os.path.join(target, ".unpacked")
    if not os.path.exists(done):
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(target)
        open(done, "w").close()
    return image_root(target)


def split_for_evaluation(root, data_root, name, test_fraction=0.2, seed=0):
    """A train/test layout of root/<class>/<image>: data_root/<name>/{train,test}/<class>/ holds
    links to the images, test_fraction of each class (at least one where a class has two or more)
    in test, chosen at random with `seed`. Stratified, so both splits hold every class. Returns the
    new root; a rerun finds it made."""
    target = os.path.join(os.path.abspath(data_root), name)
    if os.path.abspath(root) == target:
        target += "_split"
    done = os.path.join(target, ".split")
    if os.path.exists(done):
        return target
    shutil.rmtree(target, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for class_name in _visible(root):
        class_dir = os.path.join(root, class_name)
        images = [n for n in _visible(class_dir) if n.lower().endswith(IMAGE_EXTENSIONS)]
        order = rng.permutation(len(images))
        num_test = max(1, round(test_fraction * len(images))) if len(images) > 1 else 0
        for rank, index in enumerate(order):
            split = "test" if rank < num_test else "train"
            os.makedirs(os.path.join(target, split, class_name), exist_ok=True)
            os.symlink(
                os.path.abspath(os.path.join(class_dir, images[index])),
                os.path.join(target, split, class_name, images[index]),
            )
    open(done, "w").close()
    return target


def prepare_images(path, data_root="data"):
    """(dataset, train_split, eval_split) for a zip or folder of your images: a zip is extracted
    (unpack_zip), and a folder without splits gets a stratified train/test split in data_root/<its
    name> (split_for_evaluation). A folder with splits keeps them; it is evaluated on its test (or
    validation) split."""
    name = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
    root = unpack_zip(path, data_root) if path.lower().endswith(".zip") else image_root(path)
    if not has_splits(root):
        root = split_for_evaluation(root, data_root, name)
    splits = _visible(root)
    evaluation = next((s for s in EVAL_SPLIT_NAMES if s in splits), None)
    if "train" not in splits or evaluation is None:
        raise ValueError(
            f"{root} has the splits {', '.join(splits)}; name them train and test (or val)"
        )
    return f"folder:{root}", "train", evaluation


def usable_fractions(fractions, dataset, train_split="train"):
    """(fractions, notes): each label fraction raised, where a folder dataset is too small for it,
    to the smallest that keeps one labeled image per class (tfssl keeps round(fraction * N / C)
    per class); repeats dropped. tfds datasets keep theirs."""
    if not dataset.startswith("folder:"):
        return list(fractions), []
    split_dir = os.path.join(dataset.partition(":")[2], train_split)
    classes = _visible(split_dir)
    num_images = sum(
        sum(n.lower().endswith(IMAGE_EXTENSIONS) for n in _visible(os.path.join(split_dir, c)))
        for c in classes
    )
    smallest = math.ceil(len(classes) / max(num_images, 1) * 10**4) / 10**4
    usable, notes = [], []
    for fraction in fractions:
        if round(fraction * num_images / len(classes)) < 1:
            notes.append(
                f"{fraction:.0%} of {num_images} images in {len(classes)} classes is under one "
                f"image per class: using {smallest:.2%} instead"
            )
            fraction = smallest
        if fraction not in usable:
            usable.append(fraction)
    return sorted(usable), notes


def work_dir(root, dataset, budget, image_size=0):
    """root/<dataset>-<budget>[-<size>px]: one directory per dataset, budget and image size, so
    changing any of them starts new runs instead of resuming others."""
    name = dataset.partition(":")[2] if ":" in dataset else dataset
    name = os.path.basename(name.rstrip("/")) or "dataset"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    size = f"-{image_size}px" if image_size else ""
    return os.path.join(root, f"{name}-{budget}{size}")


def source_markdown(*objects):
    """Markdown listing each object's source (inspect.getsource), headed by where it lives."""
    parts = []
    for obj in objects:
        module = inspect.getmodule(obj)
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
        _, line = inspect.getsourcelines(obj)
        where = module.__name__.replace(".", "/") + ".py" if module else "?"
        parts.append(
            f"**`{name}`** ({where}, line {line})\n\n```python\n{inspect.getsource(obj)}```"
        )
    return "\n\n".join(parts)


def _shown(value):
    if isinstance(value, float):
        return f"{value:g}"
    return f"`{value}`" if isinstance(value, str) and value else str(value)


def hyperparameter_table(run_dirs, fields):
    """A Markdown table of `fields` from each run's flags.json (the values it trained with, the
    auto defaults resolved), one column per run: {column title: run_dir}. Runs' results add their
    epochs, wall time and device."""
    flags = {title: _read(run_dir, "flags.json") for title, run_dir in run_dirs.items()}
    results = {title: _read(run_dir, "result.json") for title, run_dir in run_dirs.items()}
    lines = [
        "| flag | " + " | ".join(run_dirs) + " |",
        "|---|" + "---|" * len(run_dirs),
    ]
    for field in fields:
        lines.append(
            f"| `{field}` | " + " | ".join(_shown(flags[t].get(field, "")) for t in run_dirs) + " |"
        )
    for label, key, form in (
        ("epochs", "epochs", "{:.1f}"),
        ("train wall time (s)", "train_wall_time_s", "{:.0f}"),
        ("device", "device", "{}"),
    ):
        cells = [form.format(results[t][key]) if key in results[t] else "" for t in run_dirs]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _read(run_dir, name):
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
