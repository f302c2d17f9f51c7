"""The report of --mode=compare: report.md, report.json and label_efficiency.png.

Rows are runs (one per method, label fraction and seed), taken from each run's result.json as
it is. Cells aggregate the seeds of one method and fraction: mean, sample std and a 95% Student-t
interval (tfssl/stats.py). report.json holds every number report.md prints.
"""

import os

from tfssl import stats
from tfssl.train.rundir import write_json

# Eval metrics shown when runs report them (binary and imbalanced data), beside top-1 accuracy.
OPTIONAL_METRICS = ("balanced_accuracy", "auroc")
METRIC_HEADERS = {
    "top_1_accuracy": "test top-1 %",
    "balanced_accuracy": "balanced acc. %",
    "auroc": "AUROC",
}


def fraction_name(fraction):
    return f"{100 * fraction:g}pct"


def labels_name(fraction):
    return f"{100 * fraction:g}%"


def share(fraction):
    return "all" if fraction >= 1 else f"{100 * fraction:g}%"


def report_row(method, fraction, result, run_dir, seed=0, label_seed=None):
    """One run of the report, from its result dict (result.json) as it is."""
    evaluation = result["eval"]
    return {
        "method": method,
        "label_fraction": fraction,
        "seed": seed,
        "label_seed": label_seed,
        "num_labeled_examples": result.get("num_labeled_examples"),
        "top_1_accuracy": evaluation["top_1_accuracy"],
        **{name: evaluation.get(name) for name in OPTIONAL_METRICS},
        "train_wall_time_s": result["train_wall_time_s"],
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
            "epochs": stats.mean([run["epochs"] for run in runs]),
            "train_wall_time_s": stats.mean([run["train_wall_time_s"] for run in runs]),
        }
        for metric in ("top_1_accuracy",) + OPTIONAL_METRICS:
            values = [run.get(metric) for run in runs]
            present = all(v is not None for v in values)
            cell[metric] = stats.summarize(values) if present else None
        cells.append(cell)
    return cells


# --- text ---
def _scale(metric):
    return 1.0 if metric == "auroc" else 100.0


def mean_std(summary, metric="top_1_accuracy"):
    """'98.83 ± 0.12' (no ± with one seed; '-' when absent)."""
    if summary is None:
        return "-"
    scale, digits = _scale(metric), 3 if metric == "auroc" else 2
    text = f"{scale * summary['mean']:.{digits}f}"
    return text if summary["std"] is None else text + f" ± {scale * summary['std']:.{digits}f}"


def interval(summary, metric="top_1_accuracy"):
    if summary is None or summary["ci_low"] is None:
        return "-"
    scale, digits = _scale(metric), 3 if metric == "auroc" else 2
    return f"[{scale * summary['ci_low']:.{digits}f}, {scale * summary['ci_high']:.{digits}f}]"


def _short(path):
    """A path relative to the working directory when it lies below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _joined(values):
    return "/".join("-" if v is None else str(v) for v in values)


def _seeds(count):
    return f"{count} seed{'s' if count > 1 else ''}"


def _epochs(value):
    return f"{value:.3g}"


def _percent(cell):
    return mean_std(cell["top_1_accuracy"]) + "%"


def _points(difference):
    return f"{abs(100 * difference):.2f} points {'above' if difference >= 0 else 'below'}"


def verdict(cells, labels=None, pairs=()):
    """Two or three sentences in numbers: the best method at the fewest labels against supervised
    training, each method against its teacher or probe (pairs), and any loss from the second-largest
    to the largest fraction beyond the seeds' spread."""
    labels = labels or {}

    def name(method):
        return labels.get(method, method)

    def mean(cell):
        return cell["top_1_accuracy"]["mean"]

    by = {(c["method"], c["label_fraction"]): c for c in cells}
    fractions = sorted({c["label_fraction"] for c in cells})
    low, high = fractions[0], fractions[-1]
    sentences = []
    others = [c for c in cells if c["label_fraction"] == low and c["method"] != "supervised"]
    if others:
        best = max(others, key=mean)
        sentence = (
            f"With {share(low)} of the labels ({_joined(best['num_labeled_examples'])} images), "
            f"{name(best['method'])} reaches {_percent(best)} ({_seeds(best['seeds'])})"
        )
        clauses = []
        if ("supervised", high) in by and high != low:
            top = by["supervised", high]
            clauses.append(
                f"{_points(mean(best) - mean(top))} supervised with {share(high)} of the labels "
                f"({_percent(top)})"
            )
        if ("supervised", low) in by:
            same = by["supervised", low]
            clauses.append(
                f"{_points(mean(best) - mean(same))} supervised with the same labels "
                f"({_percent(same)})"
            )
        sentences.append(sentence + (", " + " and ".join(clauses) if clauses else "") + ".")
    compared = [
        f"{name(a)} is {_points(mean(by[a, low]) - mean(by[b, low]))} {name(b)} "
        f"({_percent(by[a, low])} against {_percent(by[b, low])})"
        for a, b in pairs
        if (a, low) in by and (b, low) in by
    ]
    if compared:
        sentences.append(f"At {share(low)} of the labels, " + "; ".join(compared) + ".")
    if len(fractions) > 1:
        before = fractions[-2]
        losses = []
        for cell in cells:
            if cell["label_fraction"] == high and (cell["method"], before) in by:
                previous = by[cell["method"], before]
                spread = max((c["top_1_accuracy"]["std"] or 0.0) for c in (cell, previous))
                if mean(previous) - mean(cell) > spread:
                    losses.append(
                        f"{name(cell['method'])} loses {100 * (mean(previous) - mean(cell)):.2f} "
                        f"points ({_percent(previous)} to {_percent(cell)})"
                    )
        to = f"from {share(before)} to {share(high)} of the labels"
        sentences.append(
            f"Going {to}, " + "; ".join(losses) + ", more than the spread over seeds."
            if losses
            else f"No method loses more than the spread over seeds going {to}."
        )
    return " ".join(sentences)


def _table(header, lines):
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(str(v) for v in line) + " |" for line in lines]
    )


def cells_table(cells, metrics):
    header = ["method", "labels", "labeled examples", "seeds", "test top-1 % (mean ± std)"]
    header += ["95% interval"] + [METRIC_HEADERS[m] for m in metrics[1:]]
    header += ["train wall time per run", "epochs", "steps"]
    lines = [
        [
            c["method"],
            labels_name(c["label_fraction"]),
            _joined(c["num_labeled_examples"]),
            c["seeds"],
            mean_std(c["top_1_accuracy"]),
            interval(c["top_1_accuracy"]),
        ]
        + [mean_std(c[m], m) for m in metrics[1:]]
        + [f"{c['train_wall_time_s']:.0f} s", _epochs(c["epochs"]), _joined(c["global_step"])]
        for c in cells
    ]
    return _table(header, lines)


def runs_table(rows, metrics, root):
    header = ["method", "labels", "seed", "label seed", "labeled examples"]
    header += [METRIC_HEADERS[m] for m in metrics]
    header += ["train wall time", "epochs", "steps", "run"]
    lines = [
        [
            r["method"],
            labels_name(r["label_fraction"]),
            r["seed"],
            _joined([r["label_seed"]]),
            _joined([r["num_labeled_examples"]]),
        ]
        + [
            ("-" if r.get(m) is None else f"{_scale(m) * r[m]:.{3 if m == 'auroc' else 2}f}")
            for m in metrics
        ]
        + [
            f"{r['train_wall_time_s']:.0f} s",
            _epochs(r["epochs"]),
            r["global_step"],
            os.path.relpath(r["run_dir"], root),
        ]
        for r in rows
    ]
    return _table(header, lines)


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
            "batch) steps, at least its floor and at most its ceiling (tfssl/compare.py): "
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


def write_report(
    rows, root, title, labels=None, pairs=(), budget=None, shared=(), command_wall_time_s=None
):
    """report.md, report.json and label_efficiency.png from the run rows; returns report.md's
    path."""
    from tfssl import plots

    cells = cells_of(rows)
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
        f"![label efficiency](label_efficiency.png)\n\nError bars: {bars}.",
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
