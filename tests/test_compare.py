"""--mode=compare: the report holds exactly each run's result, the figures are valid, reruns
reuse."""

import json
import logging
import os

import pytest
from PIL import Image

from tests.conftest import tiny_config
from tfssl import jobs
from tfssl.compare import fraction_name


@pytest.fixture(scope="module")
def comparison(gray_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    cfg = tiny_config(
        mode="compare",
        dataset=f"folder:{gray_folder}",
        model_dir=str(root),
        budget="tiny",
        methods="supervised,simclr,ladder",
        label_fractions="0.25,1.0",
        eval_steps=1,
    )
    return cfg, root, jobs.run(cfg)


def test_report_numbers_are_the_runs_results(comparison):
    _, root, rows = comparison
    assert {(r["method"], r["label_fraction"]) for r in rows} == {
        (m, f) for m in ("supervised", "simclr", "ladder") for f in (0.25, 1.0)
    }
    table = [
        line for line in open(root / "report.md").read().splitlines() if line.startswith("| ")
    ][1:]
    assert len(table) == len(rows)
    for row, line in zip(rows, table):
        result = json.load(open(os.path.join(row["run_dir"], "result.json")))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == row["method"] and cells[1] == fraction_name(row["label_fraction"])
        assert cells[2] == str(result["num_labeled_examples"])
        assert cells[3] == f"{result['eval']['top_1_accuracy']:.4f}"
        assert cells[4] == f"{result['train_wall_time_s']:.0f} s"
        assert cells[6] == str(result["global_step"])
    assert json.load(open(root / "report.json"))["rows"] == json.loads(json.dumps(rows))
    labeled = {
        r["label_fraction"]: r["num_labeled_examples"] for r in rows if r["method"] == "supervised"
    }
    assert labeled == {0.25: 16, 1.0: 64}


@pytest.mark.parametrize(
    "name",
    [
        "label_efficiency.png",
        "confusion_matrix.png",
        "embedding_pca.png",
        "augmented_views.png",
        "pretrain_curves.png",
    ],
)
def test_figures_are_valid_images(comparison, name):
    _, root, _ = comparison
    with Image.open(root / name) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 200


def test_rerun_reuses_finished_runs(comparison, caplog):
    cfg, root, rows = comparison
    logger = logging.getLogger("tfssl")
    logger.addHandler(caplog.handler)
    try:
        again = jobs.run(cfg)
    finally:
        logger.removeHandler(caplog.handler)
    assert caplog.text.count("reusing") == 1 + len(rows)  # the pretraining and every run
    assert [r["top_1_accuracy"] for r in again] == [r["top_1_accuracy"] for r in rows]


def test_same_label_subset_for_every_method(comparison):
    _, root, _ = comparison
    subsets = [
        json.load(open(root / m / fraction_name(0.25) / "label_subset.json"))["indices"]
        for m in ("supervised", "simclr", "ladder")
    ]
    assert subsets[0] == subsets[1] == subsets[2]
