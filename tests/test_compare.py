"""--mode=compare: the budget rule, the spread over seeds, recipe flagfiles, the verdict, and a tiny
comparison whose report holds exactly its runs' results."""

import dataclasses
import glob
import json
import logging
import math
import os
import re
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, tiny_config
from tfssl import jobs, recipes, stats
from tfssl.compare_methods import BUDGETS, COMPARE_METHODS, Rule, budget_steps, expand_methods
from tfssl.compare_report import write_report
from tfssl.compare_verdict import verdict
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
        "simclr_linear",
        "simclr",
        "simclr_distill",
        "supervised",
    ]
    with pytest.raises(ConfigError, match="--methods has swav"):
        expand_methods(["swav"])


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
    assert recipes.read_recipe(str(path), "supervised", recipes.CONTROLLED) == {
        "learning_rate": 0.1
    }
    with pytest.raises(ConfigError, match="--mode=supervised, but this recipe is read for"):
        recipes.read_recipe(str(path), "finetune", recipes.CONTROLLED)
    path.write_text("--mode=supervised\n--model_dir=runs/x\n")
    with pytest.raises(ConfigError, match="--model_dir is set by --mode=compare"):
        recipes.read_recipe(str(path), "supervised", recipes.CONTROLLED)


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
    flags = recipes.read_recipe(path, job, recipes.CONTROLLED)
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


def _row(method, fraction, seed, top_1, balanced, counts):
    return dict(
        method=method,
        label_fraction=fraction,
        seed=seed,
        label_seed=seed,
        num_labeled_examples=100,
        num_val_examples=20,
        top_1_accuracy=top_1,
        balanced_accuracy=balanced,
        auroc=None,
        test_class_counts=counts,
        val_metric="balanced_accuracy",
        val_value=0.5,
        chosen_step=10,
        selected=None,
        grid=None,
        train_wall_time_s=1.0,
        epochs=1.0,
        global_step=10,
        run_dir=f"/runs/{method}/{fraction}/{seed}",
    )


@pytest.mark.parametrize("counts", [[800, 200], [500, 480]])
def test_imbalanced_test_sets_get_orderings_on_balanced_accuracy(tmp_path, counts):
    # Fine-tuning beats its probe on top-1 (the majority class) and loses on balanced accuracy.
    scores = {  # (method, fraction): ([top-1 by seed], [balanced accuracy by seed])
        ("simclr_linear", 0.1): ([0.80, 0.82], [0.75, 0.77]),
        ("simclr", 0.1): ([0.84, 0.85], [0.70, 0.68]),
        ("simclr_linear", 1.0): ([0.83, 0.83], [0.78, 0.76]),
        ("simclr", 1.0): ([0.86, 0.88], [0.74, 0.70]),
    }
    rows = [
        _row(method, fraction, seed, top_1[seed], balanced[seed], counts)
        for (method, fraction), (top_1, balanced) in scores.items()
        for seed in (0, 1)
    ]
    write_report(rows, str(tmp_path), "t", starts=[("simclr", "simclr_linear")])
    report = json.load(open(tmp_path / "report.json"))
    text = open(tmp_path / "report.md").read()
    assert [c["holds"] for c in report["checks"] if c["kind"] == "start"] == [True, True]
    balanced = report["checks_balanced_accuracy"]
    if counts[0] < 1.5 * counts[1]:  # 500 against 480: balanced enough, top-1 alone
        assert balanced == [] and "balanced accuracy (the mean of" not in text
        return
    starts = [c for c in balanced if c["kind"] == "start"]
    for check, fraction in zip(starts, (0.1, 1.0)):
        ft, probe = scores["simclr", fraction][1], scores["simclr_linear", fraction][1]
        tolerance = max(np.std(ft, ddof=1), np.std(probe, ddof=1))
        assert check["margin"] == pytest.approx(np.mean(ft) - np.mean(probe) + tolerance)
        assert not check["holds"]
    # 10% -> 100% for fine-tuning: 0.72 against 0.69, larger std sqrt(0.0008) = 0.0283
    more = next(c for c in balanced if c["kind"] == "more_labels" and "simclr at" in c["check"])
    assert more["margin"] == pytest.approx(0.72 - 0.69 + math.sqrt(0.0008))
    table = _table(text.split("balanced accuracy (the mean of")[1], "| ordering |")
    assert table[0]["margin (points)"] == f"{100 * starts[0]['margin']:+.2f}"
    assert table[0]["left %"] == "69.00 ± 1.41" and table[0]["holds"] == "**no**"


@pytest.mark.parametrize("methods", [("supervised", "mean_teacher"), ("simclr", "simclr_linear")])
def test_the_validation_note_names_a_start_only_when_both_runs_exist(tmp_path, methods):
    rows = [_row(m, 0.1, 0, 0.8, 0.8, [50, 50]) for m in methods]
    labels = {"simclr": "SimCLR fine-tuned", "simclr_linear": "SimCLR linear probe"}
    val = {"fraction": 0.2, "metric": "balanced_accuracy"}
    write_report(rows, str(tmp_path), "t", labels, val=val, starts=[("simclr", "simclr_linear")])
    text = open(tmp_path / "report.md").read()
    assert "20 of 100 images" in text
    named = "SimCLR fine-tuned starts from SimCLR linear probe" in text
    assert named == ("one of its candidates" in text) == ("simclr" in methods)


@pytest.mark.parametrize("num_val", [14, 100])
def test_a_small_validation_split_is_flagged_with_its_standard_error(tmp_path, num_val):
    rows = [dict(_row("supervised", 0.01, 0, 0.8, 0.8, [50, 50]), num_val_examples=num_val)]
    val = {"fraction": 0.2, "metric": "top_1_accuracy"}
    write_report(rows, str(tmp_path), "t", val=val)
    text = open(tmp_path / "report.md").read()
    # 14 images: one is 100 / 14 = 7.14 points; sqrt(0.25 / 14) = 0.1336.
    flagged = "has 14 images: one image is 7.1 points" in text and "up to 13.4 points" in text
    assert flagged == (num_val == 14)
    assert ("not told apart reliably" in text) == (num_val == 14)


# --- a tiny comparison ---
TINY_RECIPES = {
    "simclr_pretrain": "--mode=pretrain\n--width_multiplier=0.0625\n--proj_out_dim=16\n"
    "--train_batch_size=16",
    "simclr": "--mode=finetune\n--train_batch_size=16\n--learning_rate=0.02",
    "simclr_linear": "--mode=finetune\n--fine_tune_after_block=4\n--train_batch_size=16",
    "simclr_distill": "--mode=distill\n--train_batch_size=8\n--student_init=teacher",
    "supervised": "--mode=supervised\n--width_multiplier=0.0625\n--train_batch_size=32",
}
# gray_folder: 64 train images, 4 classes; at fraction 0.5, 32 labels (8 a class), of which the
# default 20% are held out: floor(0.2 * 8 + 1/2) = 2 a class, 8 images; 24 left to fit. Steps under
# tiny's (1 epoch, 2, 6): supervised 24/32 -> the floor 2; fine-tune and probe 24/16 -> 2;
# distillation 64/8 = 8 -> the ceiling 6; pretraining 64/16 = 4.
STEPS = {"supervised": 2, "simclr": 2, "simclr_linear": 2, "simclr_distill": 6}
BATCH = {"supervised": 32, "simclr": 16, "simclr_linear": 16, "simclr_distill": 8}
EXAMPLES = {"supervised": 24, "simclr": 24, "simclr_linear": 24, "simclr_distill": 64}
METHODS = ["supervised", "simclr_linear", "simclr", "simclr_distill"]


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
        finetune_learning_rates="0.02,0.1",
        finetune_crop_min_areas="0.8",
    )
    return cfg, root, jobs.run(cfg)


def _table(text, header_start):
    """The rows of the markdown table whose header starts with header_start, as dicts by header."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))

    def cells(line):
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(lines[start])
    table = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        table.append(dict(zip(header, cells(line))))
    return table


def test_runs_follow_the_budget_rule_and_the_seeds(comparison):
    _, root, rows = comparison
    assert [(r["method"], r["seed"]) for r in rows] == [(m, k) for k in (0, 1) for m in METHODS]
    for row in rows:
        flags = json.load(open(os.path.join(row["run_dir"], "flags.json")))
        assert flags["train_steps"] == STEPS[row["method"]] == row["global_step"]
        assert row["epochs"] == pytest.approx(
            STEPS[row["method"]] * BATCH[row["method"]] / EXAMPLES[row["method"]]
        )
        assert flags["seed"] == row["seed"] and flags["label_seed"] == row["seed"]
        assert flags["val_split"] == "labeled_val" and flags["labeled_val_fraction"] == 0.2
        assert flags["best_checkpoint_metric"] == "balanced_accuracy"
    pretrain = json.load(open(root / "simclr_pretrain" / "result.json"))
    assert pretrain["global_step"] == 4


def test_same_labels_for_every_method_of_a_seed(comparison):
    _, root, _ = comparison

    def subset(method, seed, key="indices"):
        directory = root / method / "50pct" / f"seed{seed}"
        if method == "simclr":
            directory = directory / "lr0.1_crop0.8"
        return json.load(open(directory / "label_subset.json"))[key]

    for seed in (0, 1):
        for key in ("indices", "val_indices"):
            assert subset("supervised", seed, key) == subset("simclr", seed, key)
            assert subset("supervised", seed, key) == subset("simclr_distill", seed, key)
            assert subset("supervised", seed, key) == subset("simclr_linear", seed, key)
        assert len(subset("supervised", seed, "val_indices")) == 8
    assert subset("supervised", 0) != subset("supervised", 1)


def _best(result):
    """The chosen checkpoint's validation numbers, found independently of the code: the highest
    balanced accuracy, then the lowest loss, then the earliest step."""
    history = result["selection"]["history"]
    return max(history, key=lambda e: (e["balanced_accuracy"], -e["loss"], -e["step"]))


def test_the_grid_keeps_the_run_with_the_best_validation(comparison):
    _, root, rows = comparison
    for row in (r for r in rows if r["method"] == "simclr"):
        directory = root / "simclr" / "50pct" / f"seed{row['seed']}"
        results = {
            lr: json.load(open(directory / f"lr{lr}_crop0.8" / "result.json"))
            for lr in ("0.02", "0.1")
        }
        key = {lr: (_best(r)["balanced_accuracy"], -_best(r)["loss"]) for lr, r in results.items()}
        winner = max(("0.02", "0.1"), key=lambda lr: key[lr])  # the first wins a tie
        grid = json.load(open(directory / "grid.json"))
        assert grid["chosen"] == {"learning_rate": float(winner), "crop_min_area": 0.8}
        assert row["run_dir"] == str(directory / f"lr{winner}_crop0.8")
        assert row["selected"] == grid["chosen"]
        assert row["train_wall_time_s"] == pytest.approx(
            sum(r["train_wall_time_s"] for r in results.values())
        )
        assert row["top_1_accuracy"] == results[winner]["eval"]["top_1_accuracy"]
        for result in results.values():
            assert result["selection"]["best_step"] == _best(result)["step"]
            # Fine-tuning starts from the probe: its step-0 validation is the probe's chosen one.
            probe = json.load(
                open(root / "simclr_linear" / "50pct" / f"seed{row['seed']}" / "result.json")
            )
            start = result["selection"]["history"][0]
            assert start["step"] == 0
            assert start["top_1_accuracy"] == probe["selection"]["best"]["top_1_accuracy"]
            assert start["loss"] == pytest.approx(probe["selection"]["best"]["loss"], rel=1e-5)
    distill = [r for r in rows if r["method"] == "simclr_distill"]
    for row in distill:
        flags = json.load(open(os.path.join(row["run_dir"], "flags.json")))
        chosen = next(r for r in rows if r["method"] == "simclr" and r["seed"] == row["seed"])
        assert flags["teacher"] == chosen["run_dir"]
        # The student starts as a copy of its teacher: its step-0 validation is the teacher's pick.
        teacher = json.load(open(os.path.join(chosen["run_dir"], "result.json")))["selection"]
        start = json.load(open(os.path.join(row["run_dir"], "result.json")))["selection"]
        assert start["history"][0]["step"] == 0
        assert start["history"][0]["top_1_accuracy"] == teacher["best"]["top_1_accuracy"]
        assert start["history"][0]["loss"] == pytest.approx(teacher["best"]["loss"], rel=1e-5)


def _small_split_config(comparison, tmp_path, **flags):
    """SimCLR alone at 50% of the comparison's labels (8 validation images) under
    --min_val_examples=9, with a grid of learning rates without the tiny recipe's 0.02, in
    tmp_path/compare with the comparison's pretraining copied in (compare reuses it)."""
    shared_cfg, shared_root, _ = comparison
    shutil.copytree(shared_root / "simclr_pretrain", tmp_path / "compare" / "simclr_pretrain")
    return tiny_config(
        mode="compare",
        dataset=shared_cfg.dataset,
        model_dir=str(tmp_path / "compare"),
        budget="tiny",
        methods="simclr",
        label_fractions="0.5",
        eval_steps=1,
        recipe_dir=shared_cfg.recipe_dir,
        finetune_learning_rates="0.1,0.05",
        min_val_examples=9,
        **flags,
    )


def test_a_split_too_small_to_choose_keeps_the_recipes_cell_and_last_checkpoint(
    comparison, tmp_path
):
    """8 validation images under --min_val_examples=9: the grid trains only the recipe's cell (lr
    0.02, which the grid lacks, and the default crop 0.3), and every run keeps its last step. The
    probe, trained first on the same labels, sized the split, so no grid cell trained before the
    recipe's. The pretraining is the comparison's, which compare reuses."""
    cfg = _small_split_config(comparison, tmp_path, finetune_crop_min_areas="0.8,0.3")
    pretrain = tmp_path / "compare" / "simclr_pretrain"
    pretrained = sorted(os.listdir(pretrain))
    rows = jobs.run(cfg)
    assert sorted(os.listdir(pretrain)) == pretrained
    directory = tmp_path / "compare" / "simclr" / "50pct" / "seed0"
    assert sorted(os.listdir(directory)) == ["grid.json", "lr0.02_crop0.3"]
    grid = json.load(open(directory / "grid.json"))
    assert grid["chosen"] == {"learning_rate": 0.02, "crop_min_area": 0.3}
    assert grid["too_small"] == {"num_val_examples": 8, "min_val_examples": 9}
    for row in rows:
        result = json.load(open(os.path.join(row["run_dir"], "result.json")))
        assert result["selection"]["best_step"] == STEPS[row["method"]] == result["global_step"]
    text = open(tmp_path / "compare" / "report.md").read()
    assert "A split of fewer than 9 images (--min_val_examples) does not choose" in text
    assert "(kept, not chosen: too few val images)" in text
    assert "so that run's network is one of its candidates where validation chooses." in text
    # Finished runs chose under this rule: another value is a one-line error, not a reuse.
    with pytest.raises(ConfigError, match="under another rule than --min_val_examples=8"):
        jobs.run(cfg.replace(min_val_examples=8))


def test_an_unsized_split_too_small_to_choose_still_keeps_the_recipes_cell(
    comparison, tmp_path, monkeypatch
):
    """With no earlier run of its labels to size the split (fine-tuning without its probe), the
    grid's first cell trains, shows the split too small, and the recipe's cell trains and is
    kept."""
    spec = dataclasses.replace(COMPARE_METHODS["simclr"], init="")
    monkeypatch.setitem(COMPARE_METHODS, "simclr", spec)
    cfg = _small_split_config(comparison, tmp_path, finetune_crop_min_areas="0.8")
    (row,) = jobs.run(cfg)
    directory = tmp_path / "compare" / "simclr" / "50pct" / "seed0"
    assert sorted(os.listdir(directory)) == ["grid.json", "lr0.02_crop0.3", "lr0.1_crop0.8"]
    assert row["run_dir"] == str(directory / "lr0.02_crop0.3")
    assert json.load(open(directory / "grid.json"))["chosen"] == {
        "learning_rate": 0.02,
        "crop_min_area": 0.3,
    }


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
        assert [cells[k] for k in ("method", "labels", "seed", "label seed")] == [
            row["method"],
            "50%",
            str(row["seed"]),
            str(row["seed"]),
        ]
        assert cells["labeled examples"] == "32" and cells["of which val"] == "8"
        assert result["num_labeled_examples"] == 24 and result["num_val_examples"] == 8
        evaluation = result["eval"]
        assert cells["test top-1 %"] == f"{100 * evaluation['top_1_accuracy']:.2f}"
        assert cells["balanced acc. %"] == f"{100 * evaluation['balanced_accuracy']:.2f}"
        assert cells["AUROC"] == f"{evaluation['auroc']:.3f}"
        if row["method"] != "simclr":  # the grid's time: test_the_grid_keeps_...
            assert cells["train wall time"] == f"{result['train_wall_time_s']:.0f} s"
        assert cells["epochs"] == f"{result['epochs']:.3g}"
        assert cells["steps"] == str(result["global_step"])
        best = _best(result)
        assert cells["val balanced acc. % (chosen)"] == f"{100 * best['balanced_accuracy']:.2f}"
        assert cells["chosen step"] == str(best["step"])
        chosen = row["selected"]
        assert cells["selected"] == (f"lr {chosen['learning_rate']:g}, crop 0.8" if chosen else "-")
    summary = _table(text, "| method | labels | labeled examples | seeds |")
    assert [c["method"] for c in summary] == METHODS
    t = math.tan(math.pi * 0.475)  # t_{0.975, 1}: two seeds
    for cells, cell in zip(summary, report["cells"]):
        accuracies = [r["eval"]["top_1_accuracy"] for r in results[cells["method"]]]
        mean, std = np.mean(accuracies), np.std(accuracies, ddof=1)
        summary_json = cell["top_1_accuracy"]
        assert summary_json["mean"] == pytest.approx(mean, abs=1e-12)
        assert summary_json["std"] == pytest.approx(std, abs=1e-12)
        assert summary_json["ci_high"] == pytest.approx(mean + t * std / math.sqrt(2), abs=1e-9)
        assert cells["seeds"] == "2"
        assert cells["test top-1 % (mean ± std)"] == f"{100 * mean:.2f} ± {100 * std:.2f}"
        low, high = 100 * (mean - t * std / math.sqrt(2)), 100 * (mean + t * std / math.sqrt(2))
        assert cells["95% interval"] == f"[{low:.2f}, {high:.2f}]"
        assert cells["steps"] == str(STEPS[cells["method"]]) and cells["of which val"] == "8"
        vals = [_best(r)["balanced_accuracy"] for r in results[cells["method"]]]
        assert cells["val balanced acc. % (chosen)"] == (
            f"{100 * np.mean(vals):.2f} ± {100 * np.std(vals, ddof=1):.2f}"
        )
        assert cells["chosen steps"] == "/".join(
            str(_best(r)["step"]) for r in results[cells["method"]]
        )
    checks = {c["ordering"]: c for c in _table(text, "| ordering |")}

    def top1(method):
        return [r["eval"]["top_1_accuracy"] for r in results[method]]

    ft, probe, student = top1("simclr"), top1("simclr_linear"), top1("simclr_distill")
    tolerance = max(np.std(ft, ddof=1), np.std(probe, ddof=1))
    margin = 100 * (np.mean(ft) - (np.mean(probe) - tolerance))
    start = checks["SimCLR fine-tuned >= SimCLR linear probe - std"]
    assert start["margin (points)"] == f"{margin:+.2f}"
    assert start["holds"] == ("yes" if margin >= 0 else "**no**")
    margin = 100 * (np.mean(student) - np.mean(ft)) + 0.1
    assert checks["SimCLR distilled >= SimCLR fine-tuned - 0.1"]["margin (points)"] == (
        f"{margin:+.2f}"
    )
    margin = 100 * (np.mean(probe) - np.mean(top1("supervised")))
    assert checks["SimCLR linear probe >= supervised"]["margin (points)"] == f"{margin:+.2f}"
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
    # The pretraining and every run: 2 seeds of supervised, probe, distillation and 2 fine-tunes.
    assert caplog.text.count("reusing") == 1 + 2 * 5
    assert [r["top_1_accuracy"] for r in again] == [r["top_1_accuracy"] for r in rows]
