"""The report of --mode=compare: report.md, report.json and label_efficiency.png.

Rows are runs (one per method, label fraction and seed), taken from each run's result.json as
it is (a grid's chosen run, with the grid's choice and time). Cells aggregate the seeds of one
method and fraction: mean, sample std and a 95% Student-t interval (tfssl/stats.py). The
verdict and the orderings it checks are in tfssl/compare_verdict.py. report.json holds every
number report.md prints.
"""

import math
import os

from tfssl import stats
from tfssl.compare_grid import SHORT
from tfssl.compare_verdict import (
    checks,
    checks_table,
    digits_of,
    interval,
    joined,
    mean_std,
    method_name,
    scale_of,
    share,
    verdict,
)
from tfssl.train.rundir import write_json

# Validation evaluations per run (one before the first step, then one per checkpoint).
VAL_EVALUATIONS = 10
# Eval metrics shown when runs report them (binary and imbalanced data), beside top-1 accuracy.
OPTIONAL_METRICS = ("balanced_accuracy", "auroc")
# A test split whose largest class has at least this many times the images of its smallest is
# imbalanced: the orderings are checked on balanced accuracy too, as accuracy rewards the majority.
IMBALANCE_RATIO = 1.5
# A validation split under this many images gets a warning: one image is a point or more.
SMALL_VALIDATION = 100
METRIC_HEADERS = {
    "top_1_accuracy": "test top-1 %",
    "balanced_accuracy": "balanced acc. %",
    "auroc": "AUROC",
    "loss": "loss",
}


def fraction_name(fraction):
    return f"{100 * fraction:g}pct"


def labels_name(fraction):
    return f"{100 * fraction:g}%"


def report_row(method, fraction, result, run_dir, seed=0, label_seed=None, grid=None):
    """One run of the report, from its result dict (result.json) as it is. Labeled examples count
    every label the run was given: those it fits on and those held out for validation. With a
    grid, the time is the whole grid's and `selected` its choice."""
    evaluation = result["eval"]
    fit, val = result.get("num_labeled_examples"), result.get("num_val_examples")
    best = (result.get("selection") or {}).get("best") or {}
    return {
        "method": method,
        "label_fraction": fraction,
        "seed": seed,
        "label_seed": label_seed,
        "num_labeled_examples": None if fit is None else fit + (val or 0),
        "num_val_examples": val,
        "top_1_accuracy": evaluation["top_1_accuracy"],
        **{name: evaluation.get(name) for name in OPTIONAL_METRICS},
        "test_class_counts": (evaluation.get("per_class") or {}).get("support"),
        "val_metric": (result.get("selection") or {}).get("metric"),
        "val_value": best.get((result.get("selection") or {}).get("metric")),
        "chosen_step": best.get("step"),
        "selected": grid["chosen"] if grid else None,
        "grid": grid,
        "train_wall_time_s": grid["train_wall_time_s"] if grid else result["train_wall_time_s"],
        "epochs": result["epochs"],
        "global_step": result["global_step"],
        "run_dir": run_dir,
    }


def _values(runs, key):
    return list(dict.fromkeys(run[key] for run in runs))


def cells_of(rows):
    """One cell per method and fraction (in the rows' method order, fractions ascending)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["method"], row["label_fraction"]), []).append(row)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    cells = []
    for (method, fraction), runs in sorted(
        groups.items(), key=lambda item: (methods.index(item[0][0]), item[0][1])
    ):
        cell = {
            "method": method,
            "label_fraction": fraction,
            "seeds": len(runs),
            "num_labeled_examples": _values(runs, "num_labeled_examples"),
            "global_step": _values(runs, "global_step"),
            "num_val_examples": _values(runs, "num_val_examples"),
            "chosen_step": [run["chosen_step"] for run in runs],
            "val_metric": runs[0]["val_metric"],
            "epochs": stats.mean([run["epochs"] for run in runs]),
            "train_wall_time_s": stats.mean([run["train_wall_time_s"] for run in runs]),
        }
        for metric in ("top_1_accuracy",) + OPTIONAL_METRICS:
            values = [run.get(metric) for run in runs]
            present = all(v is not None for v in values)
            cell[metric] = stats.summarize(values) if present else None
        values = [run["val_value"] for run in runs]
        cell["val"] = stats.summarize(values) if all(v is not None for v in values) else None
        cells.append(cell)
    return cells


def _number(value, metric):
    if value is None:
        return "-"
    return f"{scale_of(metric) * value:.{digits_of(metric)}f}"


def _flags(flags):
    return ", ".join(f"{SHORT.get(k, k)} {v:g}" for k, v in flags.items()) if flags else "-"


def _short(path):
    """A path relative to the working directory when it lies below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _epochs(value):
    return f"{value:.3g}"


def _table(header, lines):
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(str(v) for v in line) + " |" for line in lines]
    )


def _val_header(cells_or_rows):
    """The chosen-on-validation column's header; None when no run chose on validation (the
    notebook's runs, without --best_checkpoint_metric): the val columns are left out then."""
    metric = next((c["val_metric"] for c in cells_or_rows if c.get("val_metric")), None)
    if metric is None:
        return None
    return f"val {METRIC_HEADERS.get(metric, metric).replace('test ', '')} (chosen)"


def _drop_val_columns(header, lines, val_header, count):
    """The table without its last `count` (validation) columns when val_header is None."""
    if val_header is not None:
        return header, lines
    return header[:-count], [line[:-count] for line in lines]


def cells_table(cells, metrics):
    header = ["method", "labels", "labeled examples", "seeds", "test top-1 % (mean ± std)"]
    header += ["95% interval"] + [METRIC_HEADERS[m] for m in metrics[1:]]
    header += ["train wall time per run", "epochs", "steps"]
    val_header = _val_header(cells)
    header += ["of which val", val_header, "chosen steps"]
    lines = [
        [
            c["method"],
            labels_name(c["label_fraction"]),
            joined(c["num_labeled_examples"]),
            c["seeds"],
            mean_std(c["top_1_accuracy"]),
            interval(c["top_1_accuracy"]),
        ]
        + [mean_std(c[m], m) for m in metrics[1:]]
        + [f"{c['train_wall_time_s']:.0f} s", _epochs(c["epochs"]), joined(c["global_step"])]
        + [
            joined(c["num_val_examples"]),
            mean_std(c["val"], c["val_metric"]),
            joined(c["chosen_step"]),
        ]
        for c in cells
    ]
    return _table(*_drop_val_columns(header, lines, val_header, 3))


def runs_table(rows, metrics, root):
    header = ["method", "labels", "seed", "label seed", "labeled examples"]
    header += [METRIC_HEADERS[m] for m in metrics]
    header += ["train wall time", "epochs", "steps", "run"]
    val_header = _val_header(rows)
    header += ["of which val", val_header, "chosen step", "selected"]
    lines = [
        [
            r["method"],
            labels_name(r["label_fraction"]),
            r["seed"],
            joined([r["label_seed"]]),
            joined([r["num_labeled_examples"]]),
        ]
        + [_number(r.get(m), m) for m in metrics]
        + [
            f"{r['train_wall_time_s']:.0f} s",
            _epochs(r["epochs"]),
            r["global_step"],
            os.path.relpath(r["run_dir"], root),
            joined([r["num_val_examples"]]),
            _number(r["val_value"], r["val_metric"]),
            joined([r["chosen_step"]]),
            _flags(r["selected"]),
        ]
        for r in rows
    ]
    return _table(*_drop_val_columns(header, lines, val_header, 4))


def validation_note(rows, val, labels=None, starts=()):
    """What the validation split was and what it chose. starts: (method, the method whose run it
    starts from) pairs, named when both ran."""
    sizes = {}
    for r in rows:
        if r["num_val_examples"]:
            sizes.setdefault(r["label_fraction"], set()).add(
                (r["num_val_examples"], r["num_labeled_examples"])
            )
    if not sizes:
        return []
    shown = "; ".join(
        f"{share(f)} of the labels: "
        + ", ".join(f"{v} of {n}" for v, n in sorted(pairs))
        + " images"
        for f, pairs in sorted(sizes.items())
    )
    metric = METRIC_HEADERS.get(val["metric"], val["metric"]).replace(" %", "")
    paragraphs = [
        f"Validation, never test: every run on labels held out {100 * val['fraction']:g}% of its "
        "labeled subset (stratified, at least one image per class, the same images for every "
        f"method of a seed) and fitted on the rest ({shown}). It scored that split before its "
        f"first step and at about {VAL_EVALUATIONS - 1} checkpoints, kept the best by validation "
        f"{metric} (ties: the lower val loss), and scored test once, on that checkpoint."
    ]
    smallest = min(v for pairs in sizes.values() for v, _ in pairs)
    least = val.get("min_examples", 0)
    if smallest < max(SMALL_VALIDATION, least):
        paragraphs[0] += (
            f" The smallest validation split has {smallest} images: one image is "
            f"{100 / smallest:.1f} points of its accuracy, and the standard error of an accuracy "
            f"measured on it is up to {50 / math.sqrt(smallest):.1f} points (sqrt(p (1 - p) / n) "
            "at p = 0.5), so candidates closer than that are not told apart reliably."
        )
    if smallest < least:
        paragraphs[0] += (
            f" A split of fewer than {least} images (--min_val_examples) does not choose: those "
            "runs kept their last checkpoint, and their grids the recipe's values (or their first "
            "cell)."
        )
    ran = {r["method"] for r in rows}
    for method, start in starts:
        if method in ran and start in ran:
            paragraphs[0] += (
                f" {method_name(labels, method)} starts from {method_name(labels, start)}, so "
                "that run's network is one of its candidates."
            )
    grids = [r for r in rows if r.get("grid")]
    if grids:
        lines = []
        for r in grids:
            chosen = r["grid"]["chosen"]
            tried = ", ".join(
                ("**" if c["flags"] == chosen else "")
                + f"{_flags(c['flags'])}: {_number(c['val'].get(val['metric']), val['metric'])}"
                + ("**" if c["flags"] == chosen else "")
                for c in r["grid"]["candidates"]
            )
            if r["grid"].get("too_small"):
                tried += " (kept, not chosen: too few val images)"
            lines.append(
                f"| {r['method']} | {labels_name(r['label_fraction'])} | {r['seed']} | {tried} | "
                f"{r['grid']['train_wall_time_s']:.0f} s |"
            )
        paragraphs.append(
            "Grids, chosen on validation (val "
            f"{metric} of each run's chosen checkpoint; the choice in bold; the time counts every "
            "run of the grid):\n\n| grid of | labels | seed | tried | grid train time |\n"
            "|---|---|---|---|---|\n" + "\n".join(lines)
        )
    return paragraphs


def notes(rows, budget=None, shared=(), command_wall_time_s=None):
    """Paragraphs on the budget, the shared pretraining, the recipes and the wall time."""
    paragraphs = []
    if budget:
        rules = "; ".join(
            f"{role}: {rule['epochs']:g} epoch(s), {rule['floor']} to {rule['ceiling']} steps"
            for role, rule in budget["rules"].items()
        )
        paragraphs.append(
            f"Budget `{budget['name']}`: each run trains for ceil(epochs x examples per epoch / "
            "batch) steps, at least its floor and at most its ceiling (tfssl/compare_methods.py): "
            f"{rules}. "
            "Epochs count passes over each run's own training data (the labeled subset for "
            "supervised, fine-tuned and probe runs, all train images for pretraining and "
            "distillation, the method's own definition otherwise)."
        )
    for run in shared:
        accuracy = run["linear_eval_top_1_accuracy"]
        paragraphs.append(
            f"`{run['name']}` is shared by every seed and label fraction: one run (seed "
            f"{run['seed']}), {run['global_step']} steps ({_epochs(run['epochs'])} epochs over "
            f"{run['examples_per_epoch']} train images), "
            f"{run['train_wall_time_s'] / 60:.1f} min of training"
            + (
                "; its linear head, trained alongside on all labels, reaches "
                f"{100 * accuracy:.2f}%."
                if accuracy is not None
                else "."
            )
        )
    used = dict.fromkeys((r["method"], r["recipe"]) for r in rows if r.get("recipe"))
    used.update(dict.fromkeys((run["name"], run["recipe"]) for run in shared))
    if used:
        paragraphs.append(
            "Recipes: " + "; ".join(f"{method} `{_short(path)}`" for method, path in used) + "."
        )
    total = sum(r["train_wall_time_s"] for r in rows) + sum(
        run["train_wall_time_s"] for run in shared
    )
    timing = f"Training time summed over the runs: {total / 60:.1f} min"
    if command_wall_time_s is not None:
        timing += f"; this command until the report: {command_wall_time_s / 60:.1f} min"
    paragraphs.append(timing + " (a resumed command counts only its own part).")
    return paragraphs, total


def imbalanced(rows):
    """Whether some run's test split is imbalanced (IMBALANCE_RATIO)."""
    counts = [row.get("test_class_counts") for row in rows]
    return any(c and min(c) > 0 and max(c) >= IMBALANCE_RATIO * min(c) for c in counts)


def write_report(
    rows,
    root,
    title,
    labels=None,
    pairs=(),
    budget=None,
    shared=(),
    command_wall_time_s=None,
    val=None,
    starts=(),
    teachers=(),
):
    """report.md, report.json and label_efficiency.png from the run rows; returns report.md's
    path. starts and teachers: the (method, other) pairs tfssl/compare_verdict.py checks."""
    from tfssl import plots

    cells = cells_of(rows)
    found = checks(cells, labels, starts, teachers)
    balanced = []
    if imbalanced(rows):
        balanced = checks(cells, labels, starts, teachers, metric="balanced_accuracy")
    metrics = ["top_1_accuracy"] + [
        m for m in OPTIONAL_METRICS if any(r.get(m) is not None for r in rows)
    ]
    text = verdict(cells, labels, pairs)
    paragraphs, total = notes(rows, budget, shared, command_wall_time_s)
    seeds = max(c["seeds"] for c in cells)
    bars = "one std over the seeds" if seeds > 1 else "none: one seed"
    lines = [
        f"# {title}",
        cells_table(cells, metrics),
        text,
        "Orderings (mean test top-1 over the seeds; margin = left - (right - tolerance)):\n\n"
        + checks_table(found),
        *(
            [
                "The test split is imbalanced, so the same orderings on mean test balanced "
                "accuracy (the mean of the per-class recalls):\n\n" + checks_table(balanced)
            ]
            if balanced
            else []
        ),
        f"![label efficiency](label_efficiency.png)\n\nError bars: {bars}.",
        *(validation_note(rows, val, labels, starts) if val else []),
        *paragraphs,
        "Every run:\n\n" + runs_table(rows, metrics, root),
    ]
    os.makedirs(root, exist_ok=True)
    write_json(
        os.path.join(root, "report.json"),
        {
            "title": title,
            "verdict": text,
            "cells": cells,
            "checks": found,
            "checks_balanced_accuracy": balanced,
            "validation": val,
            "rows": rows,
            "budget": budget,
            "shared": list(shared),
            "total_train_wall_time_s": total,
            "command_wall_time_s": command_wall_time_s,
        },
    )
    path = os.path.join(root, "report.md")
    with open(path, "w") as f:
        f.write("\n\n".join(lines) + "\n")
    plots.label_efficiency(cells, os.path.join(root, "label_efficiency.png"), labels)
    return path


def write_figures(root, pretrain_dir, rows):
    """The comparison's figures, beside report.md."""
    from tfssl import figures

    if os.path.exists(os.path.join(pretrain_dir, "result.json")):
        figures.augmented_views(pretrain_dir, os.path.join(root, "augmented_views.png"))
        figures.training_curves(pretrain_dir, os.path.join(root, "pretrain_curves.png"))
        figures.embedding_before_after(pretrain_dir, os.path.join(root, "embedding_pca.png"))
    best = max(rows, key=lambda r: r["top_1_accuracy"])
    figures.confusion(
        best["run_dir"],
        os.path.join(root, "confusion_matrix.png"),
        f"{best['method']}, {fraction_name(best['label_fraction'])} labels",
    )
