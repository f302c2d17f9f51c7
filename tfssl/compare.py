"""--mode=compare: every method at every label fraction and seed, on the same label subsets, in one
report.

What runs. Each method runs its recipe, the flagfile configs/compare/<method>.cfg (or
<dataset>_<method>.cfg when the dataset has its own; see tfssl/recipes.py), with the comparison's
data, seed and machine flags on top. `simclr` fine-tunes the shared SimCLR pretraining
(simclr_pretrain.cfg) and brings its linear probe, `simclr_linear` (the same encoder frozen, a
linear head on the same labels); `simclr_distill` distils the `simclr` run of the same labels and
seed. COMPARE_METHODS is the table: a new method is one line there and one recipe file.

How long. Each run's steps follow from epochs over its own training data:

    steps = min(max(ceil(epochs * examples_per_epoch / batch_size), floor), ceiling)

with examples_per_epoch the run's Method.examples_per_epoch (the labeled subset for supervised,
fine-tuning and linear-probe runs; all train images for pretraining and distillation; the
method's own definition otherwise, e.g. Mean Teacher's labeled batch against all images, the
SS-VAE's unlabeled images), batch_size the recipe's --train_batch_size, and (epochs, floor,
ceiling) from BUDGETS[role][--budget]. The floor gives small data sets enough updates; the
ceiling bounds large ones. The report states each run's epochs and steps.

Seeds. --seeds=N repeats every run N times; seed k (0-based) uses --seed + k and --label_seed + k,
so it varies the label subset and the initialisation. The pretraining is shared by every seed and
fraction (one run at --seed); the report says so.

Where. Runs live under model_dir/<method>/<fraction>/seed<k>/, the pretraining under
model_dir/simclr_pretrain/. A run whose result.json has the budget's steps is reused; an
interrupted one resumes from its checkpoint, so rerunning the command continues where it stopped.
Writes report.md, report.json (every number report.md prints), label_efficiency.png and figures.
"""

import collections
import dataclasses
import logging
import math
import os
import time

from tfssl import recipes
from tfssl.compare_report import fraction_name, report_row, write_report  # noqa: F401
from tfssl.config import Config, dataset_slug
from tfssl.errors import ConfigError
from tfssl.train.rundir import RESULT_FILE, read_json

log = logging.getLogger("tfssl")

Rule = collections.namedtuple("Rule", "epochs floor ceiling")

# role: {budget: Rule(epochs, floor steps, ceiling steps)}. small: supervised + simclr (with its
# probe) + simclr_distill at 1/10/100% of MNIST, one seed, estimated at 50 min on 2 Xeon cores from
# BENCHMARKS.md's step times (float32; 25 s per run for tracing and the test-set eval).
BUDGETS = {
    "pretrain": dict(tiny=Rule(1, 2, 6), small=Rule(4, 500, 5000), full=Rule(30, 5000, 50000)),
    "labeled": dict(tiny=Rule(1, 2, 6), small=Rule(50, 200, 1500), full=Rule(100, 600, 10000)),
    "distill": dict(tiny=Rule(1, 2, 6), small=Rule(2, 200, 1500), full=Rule(10, 1000, 10000)),
    "mean_teacher": dict(
        tiny=Rule(1, 2, 6), small=Rule(0.5, 1000, 3000), full=Rule(2.5, 5000, 30000)
    ),
    "ladder": dict(tiny=Rule(1, 2, 6), small=Rule(5, 1000, 3000), full=Rule(60, 10000, 36000)),
    "ssvae": dict(tiny=Rule(1, 2, 6), small=Rule(10, 1000, 6000), full=Rule(50, 5000, 30000)),
}


def budget_steps(rule, examples_per_epoch, batch_size):
    """The budget rule (see the module docstring)."""
    steps = math.ceil(rule.epochs * examples_per_epoch / batch_size)
    return min(max(steps, rule.floor), rule.ceiling)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One compared method: its --mode, its BUDGETS role, its name in the report, the SSL method
    whose shared pretraining it starts from, the method whose run (same labels and seed) is its
    teacher, and the methods that always run beside it. Its recipe is <method name>.cfg."""

    job: str
    budget: str
    label: str
    pretrain: str = ""
    teacher: str = ""
    also: tuple = ()


COMPARE_METHODS = {
    "supervised": Spec("supervised", "labeled", "supervised"),
    "simclr": Spec("finetune", "labeled", "SimCLR fine-tuned", "simclr", also=("simclr_linear",)),
    "simclr_linear": Spec("finetune", "labeled", "SimCLR linear probe", "simclr"),
    "simclr_distill": Spec("distill", "distill", "SimCLR distilled", teacher="simclr"),
    "mean_teacher": Spec("mean_teacher", "mean_teacher", "Mean Teacher"),
    "ladder": Spec("ladder", "ladder", "Ladder"),
    "ssvae": Spec("ssvae", "ssvae", "SS-VAE M2"),
}

# Flags a comparison passes on to every run it starts (from its own command line).
SHARED_FIELDS = (
    "dataset",
    "data_dir",
    "train_split",
    "eval_split",
    "image_size",
    "eval_batch_size",
    "eval_steps",
    "strategy",
    "tpu_name",
    "precision",
    "jit_compile",
    "steps_per_loop",
    "matmul_conv_grads",
    "deterministic",
    "cache_dataset",
    "log_every_secs",
    "skip_corrupt_images",
    "folder_groups",
)
# Flags a recipe may not set: the comparison sets them for every run.
CONTROLLED = SHARED_FIELDS + (
    "model_dir",
    "label_fraction",
    "num_labels",
    "label_seed",
    "label_subset_file",
    "seed",
    "checkpoint",
    "teacher",
    "m1_checkpoint",
    "label_fractions",
    "methods",
    "budget",
    "seeds",
    "recipe_dir",
)


def expand_methods(names):
    """The methods to run, in order: each one's teacher before it, its `also` methods after it."""
    unknown = [m for m in names if m not in COMPARE_METHODS]
    if unknown:
        raise ConfigError(
            f"--methods has {', '.join(unknown)}; choose from {', '.join(COMPARE_METHODS)}"
        )
    order = []

    def add(name):
        spec = COMPARE_METHODS[name]
        if spec.teacher:
            add(spec.teacher)
        if name not in order:
            order.append(name)
        for other in spec.also:
            add(other)

    for name in names:
        add(name)
    return order


def examples_per_epoch(cfg):
    """Method.examples_per_epoch of the run cfg describes (its data and labeled subset)."""
    from tfssl.data.pipeline import DataBundle
    from tfssl.methods import method_class

    return method_class(cfg)(cfg, DataBundle(cfg, cfg.run_dir)).examples_per_epoch


class Comparison:
    def __init__(self, cfg):
        self.cfg = cfg
        self.methods = expand_methods([m.strip() for m in cfg.methods.split(",") if m.strip()])
        self.fractions = cfg.float_list("label_fractions")
        self.root = cfg.model_dir or os.path.join("runs", f"compare-{dataset_slug(cfg.dataset)}")
        self.recipe_dir = cfg.recipe_dir or recipes.default_recipe_dir()
        self.shared = {name: getattr(cfg, name) for name in SHARED_FIELDS}
        self.results = {}  # (method, fraction, seed index) -> result dict
        self.runs = {}  # model_dir -> what the report says about the run (recipe, steps rule)

    # --- one run ---
    def run_job(self, recipe, job, role, model_dir, **flags):
        """Trains one run of `recipe` under the budget unless its result is complete; returns its
        result dict."""
        from tfssl.train.launch import train

        path = recipes.recipe_path(self.recipe_dir, self.cfg.dataset, recipe)
        recipe_flags = recipes.read_recipe(path, job, CONTROLLED)
        given = {
            **recipe_flags,
            **self.shared,
            **flags,
            "mode": job,
            "model_dir": model_dir,
        }
        try:
            probe = Config.for_job(given)
            epoch = examples_per_epoch(probe)
            rule = BUDGETS[role][self.cfg.budget]
            steps = budget_steps(rule, epoch, probe.train_batch_size)
            run_cfg = Config.for_job({**given, "train_steps": steps})
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
        self.runs[model_dir] = {
            "recipe": path,
            "recipe_flags": recipe_flags,
            "role": role,
            "rule": rule._asdict(),
            "examples_per_epoch": epoch,
            "train_batch_size": run_cfg.train_batch_size,
            "train_steps": steps,
        }
        result_path = os.path.join(model_dir, RESULT_FILE)
        if os.path.exists(result_path):
            result = read_json(result_path)
            if result.get("global_step") == steps:
                log.info("reusing %s (finished)", model_dir)
                return result
        log.info("compare: %s in %s (%d steps, recipe %s)", job, model_dir, steps, path)
        return train(run_cfg)

    def pretrain_dir(self, ssl="simclr"):
        return os.path.join(self.root, f"{ssl}_pretrain")

    def pretrain(self, ssl):
        """The pretraining shared by every seed and fraction (recipe <ssl>_pretrain.cfg)."""
        key = (f"{ssl}_pretrain", None, None)
        if key not in self.results:
            self.results[key] = self.run_job(
                f"{ssl}_pretrain",
                "pretrain",
                "pretrain",
                self.pretrain_dir(ssl),
                seed=self.cfg.seed,
            )
        return self.results[key]

    def seeds(self, index):
        return {"seed": self.cfg.seed + index, "label_seed": self.cfg.label_seed + index}

    def run_dir(self, method, fraction, index=0):
        return os.path.join(self.root, method, fraction_name(fraction), f"seed{index}")

    def run_method(self, method, fraction, index=0):
        key = (method, fraction, index)
        if key in self.results:
            return self.results[key]
        spec = COMPARE_METHODS[method]
        flags = {"label_fraction": fraction, **self.seeds(index)}
        if spec.pretrain:
            self.pretrain(spec.pretrain)
            flags["checkpoint"] = self.pretrain_dir(spec.pretrain)
        if spec.teacher:
            self.run_method(spec.teacher, fraction, index)
            flags["teacher"] = self.run_dir(spec.teacher, fraction, index)
        directory = self.run_dir(method, fraction, index)
        self.results[key] = self.run_job(method, spec.job, spec.budget, directory, **flags)
        return self.results[key]

    # --- everything ---
    def run(self):
        """Every pretraining first, then seed by seed, method by method, fraction by fraction (so a
        whole first seed is done early). Returns the report rows."""
        for ssl in dict.fromkeys(COMPARE_METHODS[m].pretrain for m in self.methods):
            if ssl:
                self.pretrain(ssl)
        rows = []
        for index in range(self.cfg.seeds):
            for method in self.methods:
                for fraction in self.fractions:
                    result = self.run_method(method, fraction, index)
                    directory = self.run_dir(method, fraction, index)
                    rows.append(
                        report_row(method, fraction, result, directory, **self.seeds(index))
                    )
        return rows

    def pretraining_summary(self):
        """What the report says about each shared pretraining."""
        shared = []
        for (name, _, _), result in self.results.items():
            if name.endswith("_pretrain"):
                directory = os.path.join(self.root, name)
                shared.append(
                    {
                        "name": name,
                        "run_dir": directory,
                        "seed": self.cfg.seed,
                        "global_step": result["global_step"],
                        "epochs": result["epochs"],
                        "train_wall_time_s": result["train_wall_time_s"],
                        "linear_eval_top_1_accuracy": result["eval"].get("top_1_accuracy"),
                        **self.runs[directory],
                    }
                )
        return shared


def write_figures(comparison, rows):
    """The comparison's figures, beside report.md."""
    from tfssl import figures

    root, pretrain_dir = comparison.root, comparison.pretrain_dir()
    if os.path.exists(os.path.join(pretrain_dir, RESULT_FILE)):
        figures.augmented_views(pretrain_dir, os.path.join(root, "augmented_views.png"))
        figures.training_curves(pretrain_dir, os.path.join(root, "pretrain_curves.png"))
        figures.embedding_before_after(pretrain_dir, os.path.join(root, "embedding_pca.png"))
    best = max(rows, key=lambda r: r["top_1_accuracy"])
    figures.confusion(
        best["run_dir"],
        os.path.join(root, "confusion_matrix.png"),
        f"{best['method']}, {fraction_name(best['label_fraction'])} labels",
    )


def compare(cfg):
    start = time.time()
    comparison = Comparison(cfg)
    rows = comparison.run()
    for row in rows:
        run = comparison.runs[row["run_dir"]]
        row.update(recipe=run["recipe"], examples_per_epoch=run["examples_per_epoch"])
    path = write_report(
        rows,
        comparison.root,
        f"Label efficiency on {cfg.dataset} (budget {cfg.budget}, "
        f"{cfg.seeds} seed{'s' if cfg.seeds > 1 else ''})",
        labels={name: spec.label for name, spec in COMPARE_METHODS.items()},
        pairs=[
            (name, other)
            for name, spec in COMPARE_METHODS.items()
            for other in ((spec.teacher,) if spec.teacher else ()) + spec.also
        ],
        budget={
            "name": cfg.budget,
            "rules": {
                role: BUDGETS[role][cfg.budget]._asdict()
                for role in dict.fromkeys(run["role"] for run in comparison.runs.values())
            },
        },
        shared=comparison.pretraining_summary(),
        command_wall_time_s=time.time() - start,
    )
    write_figures(comparison, rows)
    log.info("wrote %s", path)
    print(open(path).read())
    return rows
