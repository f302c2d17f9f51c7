"""--mode=compare: every method at every label fraction, on the same label subsets, in one report.

Runs live under model_dir/<method>/<fraction>/ (SimCLR's pretraining once under
model_dir/simclr_pretrain/). A run whose result.json is complete is reused; an
interrupted one resumes from its checkpoint, so rerunning the command continues
where it stopped. Writes report.md, report.json and label_efficiency.png.
"""

import logging
import os

from tfssl.config import Config, dataset_slug
from tfssl.errors import ConfigError
from tfssl.train.rundir import RESULT_FILE, read_json, write_json

log = logging.getLogger("tfssl")

# Pretraining objectives that compare pretrains (under model_dir/<name>_pretrain/), then fine-tunes.
PRETEXT_METHODS = ("rotation", "jigsaw", "context_encoder", "colorization", "mae")
COMPARE_METHODS = (
    "supervised",
    "simclr",
    "simclr_distill",
    "mean_teacher",
    "ladder",
    "ssvae",
    *PRETEXT_METHODS,
)

# Steps per run by budget. small: MNIST, every method at 3 fractions, well under an hour on 2 CPU
# cores.
BUDGETS = {
    "tiny": {
        "pretrain": 4,
        "finetune": 4,
        "supervised": 4,
        "distill": 4,
        "mean_teacher": 4,
        "ladder": 4,
        "ssvae": 4,
    },
    "small": {
        "pretrain": 470,
        "finetune": 300,
        "supervised": 300,
        "distill": 300,
        "mean_teacher": 600,
        "ladder": 1000,
        "ssvae": 1000,
    },
    "full": {
        "pretrain": 9400,
        "finetune": 3000,
        "supervised": 3000,
        "distill": 3000,
        "mean_teacher": 10000,
        "ladder": 20000,
        "ssvae": 20000,
    },
}

# Flags a comparison passes on to every run it starts (the rest take each job's defaults).
SHARED_FIELDS = (
    "dataset",
    "data_dir",
    "train_split",
    "eval_split",
    "image_size",
    "label_seed",
    "seed",
    "eval_batch_size",
    "eval_steps",
    "strategy",
    "precision",
    "cache_dataset",
    "log_every_secs",
    "skip_corrupt_images",
)


def fraction_name(fraction):
    return f"{100 * fraction:g}pct"


class Comparison:
    def __init__(self, cfg):
        self.cfg = cfg
        self.methods = [m.strip() for m in cfg.methods.split(",") if m.strip()]
        unknown = [m for m in self.methods if m not in COMPARE_METHODS]
        if unknown:
            raise ConfigError(
                f"--methods has {', '.join(unknown)}; choose from {', '.join(COMPARE_METHODS)}"
            )
        self.fractions = cfg.float_list("label_fractions")
        self.root = cfg.model_dir or os.path.join("runs", f"compare-{dataset_slug(cfg.dataset)}")
        self.steps = BUDGETS[cfg.budget]
        self.shared = {name: getattr(cfg, name) for name in SHARED_FIELDS}

    def run_job(self, mode, model_dir, **flags):
        """Trains one run unless its result is complete; returns its result dict."""
        from tfssl.train.launch import train

        flags = {**self.shared, "train_steps": self.steps[mode], "model_dir": model_dir, **flags}
        run_cfg = Config.for_job({"mode": mode, **flags})
        result_path = os.path.join(model_dir, RESULT_FILE)
        if os.path.exists(result_path):
            result = read_json(result_path)
            if result.get("global_step") == run_cfg.train_steps:
                log.info("reusing %s (finished)", model_dir)
                return result
        log.info("compare: %s in %s", mode, model_dir)
        return train(run_cfg)

    def labels(self, fraction):
        """Flags selecting the labeled subset; fraction 1.0 lets methods reuse labeled images as
        unlabeled."""
        return {"label_fraction": fraction, "unlabeled_includes_labeled": fraction >= 1.0}

    def pretrain_dir(self, ssl_method="simclr"):
        return os.path.join(self.root, f"{ssl_method}_pretrain")

    def run_dir(self, method, fraction):
        return os.path.join(self.root, method, fraction_name(fraction))

    def run_method(self, method, fraction):
        directory = self.run_dir(method, fraction)
        labels = self.labels(fraction)
        if method == "supervised":
            return self.run_job("supervised", directory, **labels)
        if method == "simclr":
            return self.run_job("finetune", directory, checkpoint=self.pretrain_dir(), **labels)
        if method == "simclr_distill":
            self.run_method("simclr", fraction)  # the teacher: reused if already trained
            return self.run_job(
                "distill", directory, teacher=self.run_dir("simclr", fraction), **labels
            )
        if method in PRETEXT_METHODS:
            checkpoint = self.pretrain_dir(method)
            return self.run_job("finetune", directory, checkpoint=checkpoint, **labels)
        if method == "ssvae":
            return self.run_job("ssvae", directory, ssvae_model="m2", **labels)
        return self.run_job(method, directory, **labels)

    def run(self):
        if any(m.startswith("simclr") for m in self.methods):
            self.run_job("pretrain", self.pretrain_dir())
        for method in PRETEXT_METHODS:
            if method in self.methods:
                self.run_job("pretrain", self.pretrain_dir(method), ssl_method=method)
        rows = []
        for method in self.methods:
            for fraction in self.fractions:
                result = self.run_method(method, fraction)
                rows.append(report_row(method, fraction, result, self.run_dir(method, fraction)))
        return rows


def report_row(method, fraction, result, run_dir):
    """One line of the report, taken from a run's result dict (result.json) as it is."""
    return {
        "method": method,
        "label_fraction": fraction,
        "num_labeled_examples": result.get("num_labeled_examples"),
        "top_1_accuracy": result["eval"]["top_1_accuracy"],
        "train_wall_time_s": result["train_wall_time_s"],
        "epochs": result["epochs"],
        "global_step": result["global_step"],
        "run_dir": run_dir,
    }


def write_report(rows, root, title):
    """report.md (method x fraction table), report.json and label_efficiency.png; returns the report
    path."""
    from tfssl import plots

    write_json(os.path.join(root, "report.json"), {"title": title, "rows": rows})
    lines = [
        f"# {title}",
        "",
        "| method | labels | labeled examples | test top-1 | train wall time | epochs | steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {fraction_name(row['label_fraction'])} | "
            f"{row['num_labeled_examples']} | {row['top_1_accuracy']:.4f} | "
            f"{row['train_wall_time_s']:.0f} s | {row['epochs']:.1f} | {row['global_step']} |"
        )
    lines += [
        "",
        "Epochs count passes over each run's own training set (the labeled subset for supervised "
        "and fine-tuned runs, all train images otherwise).",
        "",
        "![label efficiency](label_efficiency.png)",
    ]
    path = os.path.join(root, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    plots.label_efficiency(rows, os.path.join(root, "label_efficiency.png"))
    return path


def write_figures(comparison, rows):
    """The comparison's figures, beside report.md."""
    from tfssl import figures

    root = comparison.root
    if os.path.exists(os.path.join(comparison.pretrain_dir(), RESULT_FILE)):
        figures.augmented_views(
            comparison.pretrain_dir(), os.path.join(root, "augmented_views.png")
        )
        figures.training_curves(
            comparison.pretrain_dir(), os.path.join(root, "pretrain_curves.png")
        )
        figures.embedding_before_after(
            comparison.pretrain_dir(), os.path.join(root, "embedding_pca.png")
        )
    best = max(rows, key=lambda r: r["top_1_accuracy"])
    figures.confusion(
        best["run_dir"],
        os.path.join(root, "confusion_matrix.png"),
        f"{best['method']}, {fraction_name(best['label_fraction'])} labels",
    )


def compare(cfg):
    comparison = Comparison(cfg)
    rows = comparison.run()
    path = write_report(
        rows, comparison.root, f"Label efficiency on {cfg.dataset} (budget {cfg.budget})"
    )
    write_figures(comparison, rows)
    log.info("wrote %s", path)
    print(open(path).read())
    return rows
