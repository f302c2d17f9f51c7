"""The words of the --mode=compare report: the number formats its tables share, and its notes on
validation (what each split was and what it chose), the budget, the shared pretraining, the
recipes and the time. tfssl/compare_report.py assembles them into report.md.
"""

import math
import os

from tfssl.compare_grid import SHORT
from tfssl.compare_verdict import digits_of, method_name, scale_of, share

# Validation evaluations per run (one before the first step, then one per checkpoint).
VAL_EVALUATIONS = 10
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


def number(value, metric):
    """value in the metric's scale and digits (percent for accuracies); - for None."""
    if value is None:
        return "-"
    return f"{scale_of(metric) * value:.{digits_of(metric)}f}"


def flags_text(flags):
    """A grid cell's flags, e.g. 'lr 0.02, crop 0.8'."""
    return ", ".join(f"{SHORT.get(k, k)} {v:g}" for k, v in flags.items()) if flags else "-"


def short_path(path):
    """A path relative to the working directory when it lies below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def epochs_text(value):
    """Epochs to 3 significant digits."""
    return f"{value:.3g}"


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
            "runs kept their last checkpoint, and their grids the recipe's values."
        )
    ran = {r["method"] for r in rows}
    for method, start in starts:
        if method in ran and start in ran:
            paragraphs[0] += (
                f" {method_name(labels, method)} starts from {method_name(labels, start)}, so "
                "that run's network is one of its candidates"
                + (" where validation chooses." if smallest < least else ".")
            )
    grids = [r for r in rows if r.get("grid")]
    if grids:
        lines = []
        for r in grids:
            chosen = r["grid"]["chosen"]
            tried = ", ".join(
                ("**" if c["flags"] == chosen else "")
                + f"{flags_text(c['flags'])}: {number(c['val'].get(val['metric']), val['metric'])}"
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
            f"{run['seed']}), {run['global_step']} steps ({epochs_text(run['epochs'])} epochs over "
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
            "Recipes: " + "; ".join(f"{method} `{short_path(path)}`" for method, path in used) + "."
        )
    total = sum(r["train_wall_time_s"] for r in rows) + sum(
        run["train_wall_time_s"] for run in shared
    )
    timing = f"Training time summed over the runs: {total / 60:.1f} min"
    if command_wall_time_s is not None:
        timing += f"; this command until the report: {command_wall_time_s / 60:.1f} min"
    paragraphs.append(timing + " (a resumed command counts only its own part).")
    return paragraphs, total
