"""--mode=compare: every method at every label fraction and seed, on the same label subsets, in one
report.

What runs. Each method runs its recipe, the flagfile configs/compare/<method>.cfg (or
<dataset>_<method>.cfg when the dataset has its own; see tfssl/recipes.py), with the comparison's
data, seed and machine flags on top. `simclr_linear` is the linear probe of the shared SimCLR
pretraining (simclr_pretrain.cfg): the encoder frozen, a linear head on the labels. `simclr`
fine-tunes the whole network starting from that probe (LP-FT: encoder, projection layer and the
trained head), so its starting point, the probe, is one of the checkpoints validation chooses
from (where it chooses); `simclr_distill` distils the chosen `simclr` run of the same labels and
seed into a copy of it (its recipe's --student_init=teacher), so validation, which scores the
student's step 0, can keep the teacher itself.
COMPARE_METHODS (tfssl/compare_methods.py) is the table: a new method is one line there and one
recipe file.

Validation, never test. Every run that uses labels holds out --labeled_val_fraction (0 means 0.2)
of its labeled subset, stratified, at least one image per class, chosen by its label seed (the
same images for every method of a seed; tfssl/data/subsets.py), and fits on the rest. It
evaluates that split before its first step and at about VAL_EVALUATIONS checkpoints, keeps the
best by --best_checkpoint_metric (none means balanced_accuracy; ties go to the lower val loss),
and scores the test split once, on that checkpoint (tfssl/train/selection.py). A method with a
grid (Spec.grid in tfssl/compare_methods.py; `simclr`: --finetune_learning_rates x
--finetune_crop_min_areas) trains one run per combination on the same labels and keeps the one
whose chosen checkpoint scores best on validation, as SimCLRv2 chose its fine-tuning
hyperparameters on held-out labels. The report states the validation size, each run's chosen
step and each grid's choice; its time counts every run of the grid. A split of fewer than
--min_val_examples (100) images does not choose: its runs keep their last checkpoint, and a grid
trains only the recipe's values, in the grid or not (simclr.cfg's learning rate of 0.001 is not).

How long. Each run's steps follow from epochs over its own training data, within a floor and a
ceiling of steps (the rule and BUDGETS are in tfssl/compare_methods.py). The report states each
run's epochs and steps.

Seeds. --seeds=N repeats every run N times; seed k (0-based) uses --seed + k and --label_seed + k,
so it varies the label subset and the initialisation. The pretraining is shared by every seed and
fraction (one run at --seed); the report says so.

Where. Runs live under model_dir/<method>/<fraction>/seed<k>/ (a grid's runs one level deeper,
e.g. seed0/lr0.02_crop0.8/, beside its grid.json), the pretraining under
model_dir/simclr_pretrain/. A run whose result.json has the budget's steps is reused; an
interrupted one resumes from its checkpoint, so rerunning the command continues where it stopped.
Writes report.md, report.json (every number report.md prints), label_efficiency.png and figures.
"""

import logging
import math
import os
import time

from tfssl import compare_grid as grids
from tfssl import recipes
from tfssl.compare_methods import (
    BUDGETS,
    COMPARE_METHODS,
    budget_steps,
    examples_per_epoch,
    expand_methods,
)
from tfssl.compare_report import report_row, write_figures, write_report
from tfssl.compare_text import VAL_EVALUATIONS, fraction_name
from tfssl.config import Config, dataset_slug
from tfssl.data.subsets import LABELED_VAL
from tfssl.errors import ConfigError
from tfssl.train.rundir import RESULT_FILE, read_json, write_json

log = logging.getLogger("tfssl")

DEFAULT_VAL_FRACTION = 0.2
DEFAULT_METRIC = "balanced_accuracy"


class Comparison:
    def __init__(self, cfg):
        self.cfg = cfg
        self.methods = expand_methods([m.strip() for m in cfg.methods.split(",") if m.strip()])
        self.fractions = cfg.float_list("label_fractions")
        self.root = cfg.model_dir or os.path.join("runs", f"compare-{dataset_slug(cfg.dataset)}")
        self.recipe_dir = cfg.recipe_dir or recipes.default_recipe_dir()
        self.shared = {name: getattr(cfg, name) for name in recipes.SHARED_FIELDS}
        self.val_fraction = cfg.labeled_val_fraction or DEFAULT_VAL_FRACTION
        self.metric = (
            DEFAULT_METRIC if cfg.best_checkpoint_metric == "none" else cfg.best_checkpoint_metric
        )
        self.results = {}  # (method, fraction, seed index) -> result dict
        self.dirs = {}  # (method, fraction, seed index) -> its run (a grid's chosen run)
        self.grids = {}  # (method, fraction, seed index) -> what its grid tried and chose
        self.runs = {}  # model_dir -> what the report says about the run (recipe, steps rule)

    # --- one run ---
    def run_job(self, recipe, job, role, model_dir, **flags):
        """Trains one run of `recipe` under the budget unless its result is complete; returns its
        result dict. Runs on labels hold out the validation split and choose their checkpoint on
        it."""
        from tfssl.train.launch import train

        path = recipes.recipe_path(self.recipe_dir, self.cfg.dataset, recipe)
        recipe_flags = recipes.read_recipe(path, job, recipes.CONTROLLED)
        given = {
            **recipe_flags,
            **self.shared,
            **flags,
            "mode": job,
            "model_dir": model_dir,
        }
        if role != "pretrain":
            given.update(
                val_split=LABELED_VAL,
                labeled_val_fraction=self.val_fraction,
                best_checkpoint_metric=self.metric,
                min_val_examples=self.cfg.min_val_examples,
            )
        try:
            probe = Config.for_job(given)
            epoch = examples_per_epoch(probe)
            rule = BUDGETS[role][self.cfg.budget]
            steps = budget_steps(rule, epoch, probe.train_batch_size)
            given["train_steps"] = steps
            if role != "pretrain":
                given["checkpoint_steps"] = max(1, math.ceil(steps / (VAL_EVALUATIONS - 1)))
            run_cfg = Config.for_job(given)
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
                self.check_choice_rule(result, model_dir)
                log.info("reusing %s (finished)", model_dir)
                return result
        log.info("compare: %s in %s (%d steps, recipe %s)", job, model_dir, steps, path)
        if job == "self_train":
            from tfssl.self_train import self_train

            return self_train(run_cfg)
        return train(run_cfg)

    def too_few_val(self, result):
        """Whether a run's validation split is under --min_val_examples, too small to choose."""
        return (result.get("num_val_examples") or 0) < self.cfg.min_val_examples

    def check_choice_rule(self, result, model_dir):
        """A finished run must have chosen its checkpoint as --min_val_examples now would: one
        from before the rule, or under another value, is a one-line error, not a silent reuse."""
        selection = result.get("selection")
        if not selection:
            return
        if bool(selection.get("kept_last")) != self.too_few_val(result):
            raise ConfigError(
                f"{model_dir} chose its checkpoint on {result.get('num_val_examples')} validation "
                f"images under another rule than --min_val_examples={self.cfg.min_val_examples}; "
                "remove that folder to train it again, or pass the value it ran with"
            )

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
        if spec.init:
            self.run_method(spec.init, fraction, index)
            flags["checkpoint"] = self.dirs[spec.init, fraction, index]
        if spec.teacher:
            self.run_method(spec.teacher, fraction, index)
            flags["teacher"] = self.dirs[spec.teacher, fraction, index]
        directory = self.run_dir(method, fraction, index)
        candidates = grids.combinations(self.cfg, spec.grid)
        if len(candidates) == 1:  # no choice to make: the recipe's values or the grid's only ones
            flags.update(candidates[0])
            result = self.run_job(method, spec.job, spec.budget, directory, **flags)
            self.results[key], self.dirs[key] = result, directory
            return result
        # The recipe's cell trains first (where the grid lacks it, the grid's first cell): a split
        # too small to choose stops the grid there, on the recipe's values. Every method of a seed
        # and fraction has the same split, so an earlier run of them (the probe) sizes it.
        recipe_cell = self.recipe_values(method, spec, flags)
        sized = next((r for k, r in self.results.items() if k[1:] == key[1:]), None)
        too_small = sized is not None and self.too_few_val(sized)
        kept = recipe_cell if too_small or recipe_cell in candidates else candidates[0]

        def grid_run(candidate):
            run = os.path.join(directory, grids.candidate_name(candidate))
            result = self.run_job(method, spec.job, spec.budget, run, **flags, **candidate)
            return {"flags": candidate, "run_dir": run, "result": result}

        first = grid_run(kept)
        if self.too_few_val(first["result"]) and first["flags"] != recipe_cell:
            first = grid_run(recipe_cell)  # the split, unsized before, is too small: the recipe
        if self.too_few_val(first["result"]):
            self.grids[key] = grids.kept_recipe(first, self.metric, self.cfg.min_val_examples)
            write_json(os.path.join(directory, "grid.json"), self.grids[key])
            log.info(
                "compare: %s %s seed %d: too few val images to choose", method, fraction, index
            )
            self.results[key], self.dirs[key] = first["result"], first["run_dir"]
            return first["result"]
        tried = [first if c == kept else grid_run(c) for c in candidates]  # grid order for ties
        self.grids[key] = grids.choose(tried, self.metric)
        write_json(os.path.join(directory, "grid.json"), self.grids[key])
        chosen = self.grids[key]["chosen"]
        log.info("compare: %s %s seed %d: validation chose %s", method, fraction, index, chosen)
        winner = next(t for t in tried if t["flags"] == chosen)
        self.results[key], self.dirs[key] = winner["result"], winner["run_dir"]
        return winner["result"]

    def recipe_values(self, method, spec, flags):
        """{flag: value} of the grid's flags in the method's recipe (or their defaults): the cell
        a grid trains first if the grid has it, and the one it keeps when its validation split is
        too small to choose."""
        path = recipes.recipe_path(self.recipe_dir, self.cfg.dataset, method)
        recipe_flags = recipes.read_recipe(path, spec.job, recipes.CONTROLLED)
        cfg = Config.for_job({**recipe_flags, **self.shared, **flags, "mode": spec.job})
        return {flag: getattr(cfg, flag) for flag, _ in spec.grid}

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
                    key = (method, fraction, index)
                    result = self.run_method(*key)
                    rows.append(
                        report_row(
                            method,
                            fraction,
                            result,
                            self.dirs[key],
                            grid=self.grids.get(key),
                            **self.seeds(index),
                        )
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
            for other in tuple(m for m in (spec.teacher, spec.init) if m) + spec.also
        ],
        val={
            "fraction": comparison.val_fraction,
            "metric": comparison.metric,
            "min_examples": cfg.min_val_examples,
        },
        starts=[(n, s.init) for n, s in COMPARE_METHODS.items() if s.init],
        teachers=[(n, s.teacher) for n, s in COMPARE_METHODS.items() if s.teacher],
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
    write_figures(comparison.root, comparison.pretrain_dir(), rows)
    log.info("wrote %s", path)
    print(open(path).read())
    return rows
