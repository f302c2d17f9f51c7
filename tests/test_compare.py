"""--mode=compare: the budget rule, the spread over seeds, recipe flagfiles, the verdict, and a tiny
comparison whose report holds exactly its runs' results."""

import dataclasses
import glob
import json
import logging
import math
import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, tiny_config
from tfssl import jobs, recipes, stats
from tfssl.compare import BUDGETS, COMPARE_METHODS, CONTROLLED, Rule, budget_steps, expand_methods
from tfssl.compare_report import verdict
from tfssl.config import Config
from tfssl.errors import ConfigError


# --- the budget rule ---
@pytest.mark.parametrize(
    "rule, examples, batch, steps",
    [
        (Rule(4, 500, 5000), 60000, 256, 938),  # 4 * 60000 / 256 = 937.5
        (Rule(50, 200, 1500), 600, 256, 200),  # 117.2: the floor
        (Rule(50, 200, 1500), 6000, 256, 1172),  # 1171.9
        (Rule(50, 200, 1500), 60000, 256, 1500),  # 11718.75: the ceiling
        (Rule(50, 200, 1500), 600, 64, 469),  # 468.75
        (Rule(0.5, 1000, 3000), 60000, 10, 3000),  # exactly 3000
        (Rule(10, 1000, 6000), 59400, 100, 5940),
        (Rule(4, 500, 5000), 546, 256, 500),  # 8.5: the floor
    ],
)
def test_budget_rule_gives_hand_computed_steps(rule, examples, batch, steps):
    assert budget_steps(rule, examples, batch) == steps


def test_every_method_has_a_budget_and_every_budget_a_rule_in_order():
    for spec in COMPARE_METHODS.values():
        assert spec.budget in BUDGETS
    for rules in BUDGETS.values():
        assert set(rules) == {"tiny", "small", "full"}
        assert all(r.floor <= r.ceiling for r in rules.values())


def test_methods_bring_their_teacher_and_probe():
    assert expand_methods(["simclr_distill", "supervised"]) == [
        "simclr",
        "simclr_linear",
        "simclr_distill",
        "supervised",
    ]
    with pytest.raises(ConfigError, match="--methods has byol"):
        expand_methods(["byol"])


# --- mean, std, interval ---
def test_summary_against_numpy_and_the_t_table():
    values = [0.9812, 0.9790, 0.9835, 0.9801]
    summary = stats.summarize(values)
    t = 3.182446305284263  # t_{0.975, 3}
    half = t * np.std(values, ddof=1) / math.sqrt(4)
    assert summary["n"] == 4
    assert summary["mean"] == pytest.approx(np.mean(values), abs=1e-15)
    assert summary["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-15)
    assert summary["ci_low"] == pytest.approx(np.mean(values) - half, abs=1e-9)
    assert summary["ci_high"] == pytest.approx(np.mean(values) + half, abs=1e-9)
    assert stats.summarize([0.5]) == {
        "n": 1,
        "mean": 0.5,
        "std": None,
        "ci_low": None,
        "ci_high": None,
    }


def test_t_quantile_against_closed_forms_and_tables():
    p = 0.975
    assert stats.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)
    assert stats.t_quantile(p, 2) == pytest.approx(
        (2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-10
    )
    alpha = 4 * p * (1 - p)  # df 4: t = 2 sqrt(q - 1), q = cos(acos(sqrt(alpha)) / 3) / sqrt(alpha)
    q = math.cos(math.acos(math.sqrt(alpha)) / 3) / math.sqrt(alpha)
    assert stats.t_quantile(p, 4) == pytest.approx(2 * math.sqrt(q - 1), rel=1e-10)
    for df, value in [(3, 3.182446), (5, 2.570582), (10, 2.228139), (30, 2.042272)]:
        assert stats.t_quantile(p, df) == pytest.approx(value, abs=1e-6)
    assert stats.t_quantile(0.995, 9) == pytest.approx(3.249836, abs=1e-6)
    assert stats.t_quantile(p, 100000) == pytest.approx(1.959964, abs=1e-4)
    assert stats.t_quantile(0.025, 7) == pytest.approx(-stats.t_quantile(0.975, 7), abs=1e-12)


# --- recipes ---
GOOD = """# a header
--mode=finetune

--learning_rate=0.02
--train_batch_size=64
--use_flip
--nozero_init_logits_layer
--use_blur=false
--crop_min_area=0.5
--crop_min_area=0.8
--denoising_costs=1,2,3
"""


def test_recipe_text_parses_into_typed_flags():
    assert recipes.parse_flags(GOOD) == {
        "mode": "finetune",
        "learning_rate": 0.02,
        "train_batch_size": 64,
        "use_flip": True,
        "zero_init_logits_layer": False,
        "use_blur": False,
        "crop_min_area": 0.8,  # the later line wins, as in absl
        "denoising_costs": "1,2,3",
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("--learning_rat=0.1", "x.cfg:1: --learning_rat is not a tfssl flag"),
        ("# c\n--train_batch_size=6.5", "x.cfg:2: --train_batch_size=6.5 is not an integer"),
        ("--learning_rate=fast", "--learning_rate=fast is not a number"),
        ("--use_flip=maybe", "--use_flip=maybe is not a boolean"),
        ("learning_rate=0.1", "x.cfg:1: 'learning_rate=0.1' is not a flag"),
        ("--flagfile=other.cfg", "cannot include another flagfile"),
        ("--learning_rate", "--learning_rate needs a value"),
    ],
)
def test_bad_recipe_text_is_a_one_line_error(text, message):
    with pytest.raises(ConfigError) as error:
        recipes.parse_flags(text, "x.cfg")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_recipe_must_fit_its_job_and_leave_run_flags_to_compare(tmp_path):
    path = tmp_path / "r.cfg"
    path.write_text("--mode=supervised\n--learning_rate=0.1\n")
    assert recipes.read_recipe(str(path), "supervised", CONTROLLED) == {"learning_rate": 0.1}
    with pytest.raises(ConfigError, match="--mode=supervised, but this recipe is read for"):
        recipes.read_recipe(str(path), "finetune", CONTROLLED)
    path.write_text("--mode=supervised\n--model_dir=runs/x\n")
    with pytest.raises(ConfigError, match="--model_dir is set by --mode=compare"):
        recipes.read_recipe(str(path), "supervised", CONTROLLED)


def test_dataset_recipes_come_first():
    directory = recipes.default_recipe_dir()
    mnist = recipes.recipe_path(directory, "mnist", "mean_teacher")
    fashion = recipes.recipe_path(directory, "fashion_mnist", "mean_teacher")
    assert os.path.basename(mnist) == "mnist_mean_teacher.cfg"
    assert os.path.basename(fashion) == "mean_teacher.cfg"
    with pytest.raises(ConfigError, match="no recipe nothing.cfg"):
        recipes.recipe_path(directory, "mnist", "nothing")


RECIPES = sorted(glob.glob(os.path.join(REPO, "configs", "compare", "*.cfg")))
RUN_FLAGS = {"finetune": {"checkpoint": "runs/pre"}, "distill": {"teacher": "runs/ft"}}


@pytest.mark.parametrize("path", RECIPES, ids=os.path.basename)
def test_shipped_recipes_parse_as_absl_does_and_validate(path):
    """Our parser against absl's (run.py) on each recipe, then the recipe as compare reads it."""
    sys.path.insert(0, REPO)
    import run

    text = open(path).read()
    assert text.startswith("# ") and f"--flagfile=configs/compare/{os.path.basename(path)}" in text
    run.FLAGS.unparse_flags()
    run.FLAGS(["run.py", f"--flagfile={path}"])
    by_absl = {
        f.name: run.FLAGS[f.name].value
        for f in dataclasses.fields(Config)
        if run.FLAGS[f.name].present
    }
    run.FLAGS.unparse_flags()
    assert recipes.parse_flags(text, path) == by_absl
    job = by_absl["mode"]
    assert job in {spec.job for spec in COMPARE_METHODS.values()} | {"pretrain"}
    flags = recipes.read_recipe(path, job, CONTROLLED)
    Config.for_job({"mode": job, **flags, **RUN_FLAGS.get(job, {})})


def test_every_method_has_a_general_recipe():
    names = {os.path.basename(p)[: -len(".cfg")] for p in RECIPES}
    assert set(COMPARE_METHODS) | {"simclr_pretrain"} <= names


# --- the verdict ---
def _cell(method, fraction, values, labeled):
    return {
        "method": method,
        "label_fraction": fraction,
        "seeds": len(values),
        "num_labeled_examples": [labeled],
        "top_1_accuracy": stats.summarize(values),
    }


def test_verdict_states_the_numbers():
    cells = [
        _cell("supervised", 0.01, [0.95, 0.96], 600),
        _cell("supervised", 1.0, [0.99, 0.995], 60000),
        _cell("simclr", 0.01, [0.98, 0.982], 600),
        _cell("simclr", 1.0, [0.97, 0.97], 60000),
        _cell("simclr_distill", 0.01, [0.985, 0.985], 600),
    ]
    text = verdict(cells, {"simclr": "SimCLR fine-tuned"}, [("simclr_distill", "simclr")])
    assert text.startswith(
        "With 1% of the labels (600 images), simclr_distill reaches 98.50 ± 0.00% (2 seeds), "
        "0.75 points below supervised with all of the labels (99.25 ± 0.35%) and 3.00 points above "
        "supervised with the same labels (95.50 ± 0.71%)."
    )
    assert "simclr_distill is 0.40 points above SimCLR fine-tuned (98.50 ± 0.00% against " in text
    assert "Going from 1% to all of the labels, SimCLR fine-tuned loses 1.10 points" in text
    assert "supervised loses" not in text


# --- a tiny comparison ---
TINY_RECIPES = {
    "simclr_pretrain": "--mode=pretrain\n--width_multiplier=0.0625\n--proj_out_dim=16\n"
    "--train_batch_size=16",
    "simclr": "--mode=finetune\n--train_batch_size=16\n--learning_rate=0.02",
    "simclr_linear": "--mode=finetune\n--fine_tune_after_block=4\n--train_batch_size=16",
    "simclr_distill": "--mode=distill\n--train_batch_size=8",
    "supervised": "--mode=supervised\n--width_multiplier=0.0625\n--train_batch_size=32",
}
# gray_folder: 64 train images; at fraction 0.5, 32 labels. Steps under tiny's (1 epoch, 2, 6):
# supervised 32/32 = 1 -> the floor 2; fine-tune and probe 32/16 = 2; distillation 64/8 = 8 ->
# the ceiling 6; pretraining 64/16 = 4.
STEPS = {"supervised": 2, "simclr": 2, "simclr_linear": 2, "simclr_distill": 6}
BATCH = {"supervised": 32, "simclr": 16, "simclr_linear": 16, "simclr_distill": 8}
EXAMPLES = {"supervised": 32, "simclr": 32, "simclr_linear": 32, "simclr_distill": 64}


@pytest.fixture(scope="module")
def comparison(gray_folder, tmp_path_factory):
    recipe_dir = tmp_path_factory.mktemp("recipes")
    for name, text in TINY_RECIPES.items():
        (recipe_dir / f"{name}.cfg").write_text(text + "\n")
    root = tmp_path_factory.mktemp("compare")
    cfg = tiny_config(
        mode="compare",
        dataset=f"folder:{gray_folder}",
        model_dir=str(root),
        budget="tiny",
        methods="supervised,simclr_distill",
        label_fractions="0.5",
        seeds=2,
        eval_steps=1,
        recipe_dir=str(recipe_dir),
    )
    return cfg, root, jobs.run(cfg)


def _table(text, header_start):
    """The rows of the markdown table whose header starts with header_start, as lists of cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    table = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        table.append([c.strip() for c in line.strip().strip("|").split("|")])
    return table


def test_runs_follow_the_budget_rule_and_the_seeds(comparison):
    _, root, rows = comparison
    methods = ["supervised", "simclr", "simclr_linear", "simclr_distill"]
    assert [(r["method"], r["seed"]) for r in rows] == [(m, k) for k in (0, 1) for m in methods]
    for row in rows:
        flags = json.load(open(os.path.join(row["run_dir"], "flags.json")))
        assert flags["train_steps"] == STEPS[row["method"]] == row["global_step"]
        assert row["epochs"] == pytest.approx(
            STEPS[row["method"]] * BATCH[row["method"]] / EXAMPLES[row["method"]]
        )
        assert flags["seed"] == row["seed"] and flags["label_seed"] == row["seed"]
    pretrain = json.load(open(root / "simclr_pretrain" / "result.json"))
    assert pretrain["global_step"] == 4


def test_same_labels_for_every_method_of_a_seed(comparison):
    _, root, _ = comparison

    def subset(method, seed):
        path = root / method / "50pct" / f"seed{seed}" / "label_subset.json"
        return json.load(open(path))["indices"]

    for seed in (0, 1):
        assert subset("supervised", seed) == subset("simclr", seed) == subset("simclr_linear", seed)
    assert subset("supervised", 0) != subset("supervised", 1)


def test_report_numbers_are_the_runs_results(comparison):
    _, root, rows = comparison
    text = open(root / "report.md").read()
    report = json.load(open(root / "report.json"))
    assert report["rows"] == json.loads(json.dumps(rows))
    runs = _table(text, "| method | labels | seed |")
    assert len(runs) == len(rows)
    results = {}
    for row, cells in zip(rows, runs):
        result = json.load(open(os.path.join(row["run_dir"], "result.json")))
        results.setdefault(row["method"], []).append(result)
        assert cells[:5] == [row["method"], "50%", str(row["seed"]), str(row["seed"]), "32"]
        assert cells[5] == f"{100 * result['eval']['top_1_accuracy']:.2f}"
        assert cells[6] == f"{result['train_wall_time_s']:.0f} s"
        assert cells[7] == f"{result['epochs']:.3g}" and cells[8] == str(result["global_step"])
    summary = _table(text, "| method | labels | labeled examples | seeds |")
    assert [c[0] for c in summary] == ["supervised", "simclr", "simclr_linear", "simclr_distill"]
    t = math.tan(math.pi * 0.475)  # t_{0.975, 1}: two seeds
    for cells, cell in zip(summary, report["cells"]):
        accuracies = [r["eval"]["top_1_accuracy"] for r in results[cells[0]]]
        mean, std = np.mean(accuracies), np.std(accuracies, ddof=1)
        summary_json = cell["top_1_accuracy"]
        assert summary_json["mean"] == pytest.approx(mean, abs=1e-12)
        assert summary_json["std"] == pytest.approx(std, abs=1e-12)
        assert summary_json["ci_high"] == pytest.approx(mean + t * std / math.sqrt(2), abs=1e-9)
        assert cells[3] == "2" and cells[4] == f"{100 * mean:.2f} ± {100 * std:.2f}"
        low, high = 100 * (mean - t * std / math.sqrt(2)), 100 * (mean + t * std / math.sqrt(2))
        assert cells[5] == f"[{low:.2f}, {high:.2f}]"
        assert cells[-1] == str(STEPS[cells[0]])
    assert report["verdict"] in text and "With 50% of the labels (32 images)" in text
    assert re.search(r"`simclr_pretrain` is shared by every seed and label fraction: one run", text)


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
