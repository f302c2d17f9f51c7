"""The report of --mode=compare: report.md, report.json and label_efficiency.png.

Rows are runs (one per method, label fraction and seed), taken from each run's result.json as
it is (a grid's chosen run, with the grid's choice and time). Cells aggregate the seeds of one
method and fraction: mean, sample std and a 95% Student-t interval (tfssl/stats.py). The
verdict and the orderings it checks are in tfssl/compare_verdict.py. report.json holds every
number report.md prints.
"""

import os

from tfssl import stats
from tfssl.compare_text import (
    METRIC_HEADERS,
    epochs_text,
    flags_text,
    fraction_name,
    labels_name,
    notes,
    number,
    validation_note,
)
from tfssl.compare_verdict import (
    checks,
    checks_table,
    interval,
    joined,
    mean_std,
    verdict,
)
from tfssl.train.rundir import write_json

# Eval metrics shown when runs report them (binary and imbalanced data), beside top-1 accuracy.
OPTIONAL_METRICS = ("balanced_accuracy", "auroc")
# A test split whose largest class has at least this many times the images of its smallest is
# imbalanced: the orderings are checked on balanced accuracy too, as accuracy rewards the majority.
IMBALANCE_RATIO = 1.5


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
        + [f"{c['train_wall_time_s']:.0f} s", epochs_text(c["epochs"]), joined(c["global_step"])]
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
        + [number(r.get(m), m) for m in metrics]
        + [
            f"{r['train_wall_time_s']:.0f} s",
            epochs_text(r["epochs"]),
            r["global_step"],
            os.path.relpath(r["run_dir"], root),
            joined([r["num_val_examples"]]),
            number(r["val_value"], r["val_metric"]),
            joined([r["chosen_step"]]),
            flags_text(r["selected"]),
        ]
        for r in rows
    ]
    return _table(*_drop_val_columns(header, lines, val_header, 4))


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
