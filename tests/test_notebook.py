"""The assignment notebook runs top to bottom, unattended, on MNIST with the tiny budget."""

import os

import nbformat
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOK = os.path.join(REPO, "colab", "tfssl_assignment.ipynb")


def test_notebook_runs_and_prints_the_table(mnist_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TFSSL_NOTEBOOK_BUDGET", "tiny")
    monkeypatch.setenv("TFSSL_NOTEBOOK_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TFSSL_DATA_DIR", mnist_data_dir)
    monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    printed = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| method | labels |")
    methods = {line.split("|")[1].strip() for line in table[2:]}
    assert methods == {"simclr", "supervised", "simclr_distill"}
    for name in (
        "label_efficiency.png",
        "confusion_matrix.png",
        "embedding_pca.png",
        "augmented_views.png",
    ):
        assert (tmp_path / "runs" / name).stat().st_size > 1000
    assert (tmp_path / "runs" / "exported" / "saved_model.pb").exists()
    assert "predicted:" in printed
