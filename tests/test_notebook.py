"""The Colab notebook runs top to bottom, unattended, on the tiny budget, twice and at once:

- install: a wheel built with `python -m build` is installed by the notebook's first cell (Colab
  simulated with TFSSL_SIMULATE_COLAB=1) into a fresh virtual environment that, like Colab, already
  holds TensorFlow (--system-site-packages); the kernel must then import that wheel's tfssl; MNIST.
- zip: the checkout's tfssl on a generated zip of one top-level folder with one sub-folder per
  class and images of mixed sizes.

The two kernels run concurrently: each spends most of its time building graphs on one core. Both
take about 3 minutes, so they are `slow`; the default suite reads the notebook's code instead:
every tfssl name it imports or uses must exist, and every flag it passes must be a Config field.
"""

import ast
import asyncio
import dataclasses
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from PIL import Image

import tfssl
from tests.conftest import REPO, class_pattern_images
from tfssl.config import MODES, Config

NOTEBOOK = os.path.join(REPO, "colab", "tfssl_assignment.ipynb")
CLASSES = ("circle", "cross", "stripes")


def build_wheel(root):
    """The checkout's wheel, built as README.md says, from a copy (no build/ left in the repo)."""
    pytest.importorskip("build")
    source = root / "src"
    shutil.copytree(
        os.path.join(REPO, "tfssl"), source / "tfssl", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("setup.py", "README.md", "pyproject.toml"):
        shutil.copy(os.path.join(REPO, name), source / name)
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(root / "dist")]
        + [str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (root / "dist").glob("tfssl-*.whl")
    return wheel


def venv_kernel(root):
    """A virtual environment that sees the system's packages (TensorFlow, ipykernel, pip) but not
    tfssl until the notebook installs it, and a Jupyter kernel spec that runs its Python."""
    venv = root / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    python = str(venv / "bin" / "python")
    spec = root / "jupyter" / "kernels" / "tfssl-venv"
    spec.mkdir(parents=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "tfssl venv", "language": "python"})
    )
    return venv


def image_zip(root):
    """root/my_images.zip holding my_images/<class>/<i>.png, RGB, of sizes from 20 to 44 pixels."""
    rng = np.random.default_rng(0)
    folder = root / "zip_source" / "my_images"
    images, labels = class_pattern_images(num_classes=3, per_class=10, size=32, channels=3)
    for i, (image, label) in enumerate(zip(images, labels)):
        size = int(rng.integers(20, 45))
        (folder / CLASSES[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((size, size + i % 3)).save(
            folder / CLASSES[label] / f"{i}.png"
        )
    path = root / "my_images.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.rglob("*.png")):
            archive.write(file, file.relative_to(folder.parent))
    return path


async def execute_all(clients):
    return await asyncio.gather(
        *(client.async_execute(env=env) for client, env in clients), return_exceptions=True
    )


def outputs_text(notebook):
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/markdown", ""))
            if output.get("output_type") == "error":
                parts.append(f"{output['ename']}: {output['evalue']}")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(mnist_data_dir, tmp_path_factory):
    """{"install": (notebook, error or None, its folder, the venv), "zip": ...}, run at once."""
    root = tmp_path_factory.mktemp("notebook")
    wheel = build_wheel(root)
    venv = venv_kernel(root)
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    base.update(TFSSL_NOTEBOOK_BUDGET="tiny", TFSSL_DATA_DIR=mnist_data_dir)
    runs = {
        "install": (
            "tfssl-venv",
            dict(
                base,
                TFSSL_SIMULATE_COLAB="1",
                TFSSL_WHEEL=str(wheel),
                TFSSL_NOTEBOOK_DIR=str(root / "install" / "runs"),
                PIP_NO_INDEX="1",  # everything tfssl needs is there already, as in Colab
                PIP_DISABLE_PIP_VERSION_CHECK="1",
            ),
        ),
        "zip": (
            "python3",
            dict(
                base,
                PYTHONPATH=REPO,
                TFSSL_NOTEBOOK_IMAGES=str(image_zip(root)),
                TFSSL_NOTEBOOK_IMAGE_SIZE="32",
                TFSSL_NOTEBOOK_DIR=str(root / "zip" / "runs"),
            ),
        ),
    }
    clients, notebooks = [], {}
    for name, (kernel, env) in runs.items():
        (root / name).mkdir(exist_ok=True)
        notebooks[name] = nbformat.read(NOTEBOOK, as_version=4)
        client = NotebookClient(
            notebooks[name],
            timeout=900,
            kernel_name=kernel,
            resources={"metadata": {"path": str(root / name)}},
        )
        clients.append((client, env))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root / "jupyter"))
        errors = asyncio.run(execute_all(clients))
    for name, executed_notebook in notebooks.items():  # to read when a test fails
        nbformat.write(executed_notebook, str(root / name / "executed.ipynb"))
    errors = [error if isinstance(error, BaseException) else None for error in errors]
    return {name: (notebooks[name], error, root / name, venv) for name, error in zip(runs, errors)}


def work_dir(root):
    (directory,) = [p for p in (root / "runs").iterdir() if p.is_dir()]
    return directory


def check_common(notebook, work):
    printed = outputs_text(notebook)
    rows = [line for line in printed.splitlines() if re.match(r"\| \w+ \| [\d.]+% \| ", line)]
    assert {row.split("|")[1].strip() for row in rows} == {"simclr", "supervised", "simclr_distill"}
    for name in (
        "label_efficiency.png",
        "confusion_matrix.png",
        "embedding_pca.png",
        "augmented_views.png",
        "pretrain_curves.png",
        "finetune_curves.png",
        "distill_curves.png",
    ):
        assert (work / name).stat().st_size > 1000, name
    assert (work / "exported" / "saved_model.pb").exists()
    assert "predicted:" in printed
    # The code that ran, and the hyperparameters read back from flags.json.
    for shown in (
        "def nt_xent(",
        "class ProjectionHead(",
        "def simclr_view(",
        "def _replica_step(",
    ):
        assert shown in printed, shown
    assert "def distillation_loss(" in printed and "def loss(self, batch)" in printed
    flags = json.load(open(work / "pretrain" / "flags.json"))
    assert f"| `temperature` | {flags['temperature']:g} |" in printed
    assert f"| `precision` | `{flags['precision']}` |" in printed
    # The discussion quotes the numbers the runs wrote.
    fractions = sorted(os.listdir(work / "simclr"), key=float)  # FRACTIONS, as run directories
    few, most = fractions[0], fractions[-1]
    results = {
        run: json.load(open(work / run / "result.json"))["eval"]["top_1_accuracy"]
        for run in (f"simclr/{few}", f"supervised/{few}", "supervised/1", f"simclr_distill/{most}")
    }
    discussion = printed[printed.index("1. **Few labels.**") :]
    for accuracy in results.values():
        assert f"**{accuracy:.1%}**" in discussion
    return printed, flags


@pytest.mark.slow
def test_installed_wheel_runs_the_notebook_in_simulated_colab(executed):
    notebook, error, root, venv = executed["install"]
    assert error is None, error
    printed, flags = check_common(notebook, work_dir(root))
    # The kernel imported the wheel the first cell installed into the new environment.
    location = re.search(r"tfssl \S+ from (\S+)", printed).group(1)
    assert location.startswith(str(venv)) and "site-packages" in location, location
    assert not location.startswith(REPO)
    assert work_dir(root).name == "mnist-tiny"
    assert flags["dataset"] == "mnist" and flags["precision"] != "auto"


@pytest.mark.slow
def test_zip_of_one_folder_with_mixed_sizes(executed):
    notebook, error, root, _ = executed["zip"]
    assert error is None, error
    work = work_dir(root)
    printed, flags = check_common(notebook, work)
    assert work.name == "my_images-tiny-32px"
    # The zip's top folder was stepped into: its sub-folders are the classes, each split 8 / 2.
    dataset = flags["dataset"].partition(":")[2]
    for split, count in (("train", 8), ("test", 2)):
        assert sorted(os.listdir(os.path.join(dataset, split))) == list(CLASSES)
        for name in CLASSES:
            assert len(os.listdir(os.path.join(dataset, split, name))) == count
    assert flags["image_size"] == 32 and flags["eval_split"] == "test"
    # 24 train images in 3 classes: 1% is round(0.08) = 0 per class, raised to 3 / 24 = 0.125.
    assert sorted(os.listdir(work / "simclr"), key=float) == ["0.1", "0.125"]
    assert "1% of 24 images in 3 classes is under one image per class" in printed
    result = json.load(open(work / "supervised" / "1" / "result.json"))
    assert result["num_labeled_examples"] == 24 and result["eval"]["num_examples"] == 6


def test_without_a_wheel_or_git_url_colab_says_what_to_do(tmp_path):
    """The install cell alone, in simulated Colab with neither TFSSL_WHEEL nor TFSSL_GIT: one
    message naming both, and nothing installed."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells = [next(c for c in notebook.cells if c.cell_type == "code")]
    env = {k: v for k, v in os.environ.items() if k not in ("TFSSL_WHEEL", "TFSSL_GIT")}
    client = NotebookClient(notebook, timeout=120, kernel_name="python3")
    with pytest.raises(CellExecutionError):
        client.execute(env={**env, "TFSSL_SIMULATE_COLAB": "1"})
    (error,) = [o for o in notebook.cells[0].outputs if o.get("output_type") == "error"]
    assert error["ename"] == "SystemExit"
    assert "TFSSL_WHEEL" in error["evalue"] and "TFSSL_GIT" in error["evalue"]
    assert "python -m build" in error["evalue"]


def notebook_code():
    """The notebook's code cells as one module (they run in one namespace), shell lines dropped."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c.source for c in notebook.cells if c.cell_type == "code"]
    shell = ("!", "%")
    lines = [ln for cell in cells for ln in cell.splitlines() if not ln.lstrip().startswith(shell)]
    return ast.parse("\n".join(lines))


def test_the_notebook_uses_only_names_and_flags_that_tfssl_has():
    """A renamed function, module or flag breaks the notebook in Colab; this finds it without
    running it: each tfssl import and module attribute exists, each tfssl.run keyword (and each key
    of a dict splatted into it, or of a *_FLAGS list) is a Config field, each mode a mode."""
    tree = notebook_code()
    fields = {f.name for f in dataclasses.fields(Config)}
    modules = {}  # local name -> imported tfssl module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tfssl":
                    module = importlib.import_module(alias.name)
                    modules[alias.asname or "tfssl"] = module if alias.asname else tfssl
        elif isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "tfssl":
            module = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if value is None:
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                if isinstance(value, type(module)):
                    modules[alias.asname or alias.name] = value
    assert {"tfssl", "notebook", "compare", "figures"} <= set(modules)
    used, splatted, run_calls = 0, set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in modules:
                assert hasattr(modules[node.value.id], node.attr), f"{node.value.id}.{node.attr}"
                used += 1
        is_run = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run"
            and getattr(node.func.value, "id", "") == "tfssl"
        )
        if is_run:
            run_calls.append(node)
            assert isinstance(node.args[0], ast.Constant) and node.args[0].value in MODES
            for keyword in node.keywords:
                if keyword.arg is None:
                    splatted.add(getattr(keyword.value, "id", None))
                else:
                    assert keyword.arg in fields, keyword.arg
    assert used > 10 and len(run_calls) >= 4
    checked = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        name, value = node.targets[0].id, node.value
        is_dict = isinstance(value, ast.Call) and getattr(value.func, "id", "") == "dict"
        if name in splatted and is_dict:
            keys = {keyword.arg for keyword in value.keywords}
        elif name.endswith("_FLAGS") and isinstance(value, ast.List):
            keys = {element.value for element in value.elts}
        else:
            continue
        assert keys and keys <= fields, (name, keys - fields)
        checked.add(name)
    assert "COMMON" in checked and len(checked) >= 5, checked
