"""Best-checkpoint selection on a validation split (--best_checkpoint_metric, --val_split).

The trainer evaluates --val_split before the first step and after every checkpoint it saves. The
best evaluation so far (by the metric; higher is better, except for the loss; a tie goes to the
lower val loss, then to the earlier step) has its networks (Method.checkpoint_items) saved in
<model_dir>/best/. At the end the trainer restores them, saves them as the run's last checkpoint
(so eval, export, a distillation teacher and a fine-tune all get the chosen model) and evaluates
the eval split once, on it. Every evaluation is kept in <model_dir>/selection.json, so a resumed
run continues the same choice (under another --min_val_examples that would change it, it stops).

A split of fewer than --min_val_examples images does not choose. There the latest evaluation counts
as the best, so the run keeps its last checkpoint. On HAM10000 at 1% of the labels (14 validation
images), choosing had done no better than that on 1,009 held-out images (BENCHMARKS.md).
"""

import logging
import math
import os

import tensorflow as tf

from tfssl.errors import ConfigError
from tfssl.train.evaluate import scalar_metrics, validation_scores
from tfssl.train.rundir import read_json, write_json

log = logging.getLogger("tfssl")

SELECTION_FILE = "selection.json"
BEST_DIR = "best"
# The validation numbers kept for each evaluation.
KEPT = ("top_1_accuracy", "balanced_accuracy", "auroc", "loss", "num_examples")


def sort_key(metrics, metric):
    """A key that is larger for a better evaluation: the metric (negated for the loss), then the
    lower loss. NaN (e.g. AUROC with one class present) ranks last."""

    def finite(value):
        return value if value is not None and math.isfinite(value) else -math.inf

    loss = finite(-metrics["loss"]) if metrics.get("loss") is not None else -math.inf
    value = loss if metric == "loss" else finite(metrics.get(metric))
    return (value, loss)


def best_of(evaluations, metric, min_examples=0):
    """The best evaluation of a list (the earliest among equals); on a split of fewer than
    min_examples images, the latest."""
    best = None
    for evaluation in evaluations:
        if best is None or _key(evaluation, metric, min_examples) > _key(
            best, metric, min_examples
        ):
            best = evaluation
    return best


def too_small(evaluation, min_examples):
    """Whether an evaluation's split has too few images to choose by."""
    return (evaluation.get("num_examples") or 0) < min_examples


def _key(evaluation, metric, min_examples):
    if too_small(evaluation, min_examples):
        return (evaluation["step"],)
    return sort_key(evaluation, metric)


class BestCheckpoint:
    """The validation history of one run and its best networks (best/ckpt-<step>)."""

    def __init__(self, run_dir, metric, split, items, writer=True, directory="", min_examples=0):
        self.run_dir, self.metric, self.split, self.writer = run_dir, metric, split, writer
        self.min_examples = min_examples
        self.path = os.path.join(run_dir, SELECTION_FILE)
        saved = read_json(self.path) if os.path.exists(self.path) else {}
        self.history = saved.get("history", []) if saved.get("metric") == metric else []
        self.saved = saved if self.history else {}
        self.checkpoint = tf.train.Checkpoint(**items)
        # Other workers of a multi-worker run write too (collectives), but to a scratch directory.
        self.directory = directory or os.path.join(run_dir, BEST_DIR)

    def check_resume(self):
        """A resumed run keeps the rule it began under: another --min_val_examples that moves its
        best step is a one-line error (best/ holds only the networks of the step selection.json
        names). Called before a resume, so the folder still records what the run used."""
        step = self.saved.get("best_step")
        if step is None or self.best["step"] == step:
            return
        before = self.saved.get("min_val_examples")
        how = "kept its last checkpoint" if self.saved.get("kept_last") else "chose"
        raise ConfigError(
            f"{self.run_dir} {how} (step {step}) on {self.history[-1].get('num_examples')} "
            f"validation images under another --min_val_examples than {self.min_examples}; "
            + (
                f"resume it with --min_val_examples={before}"
                if before is not None
                else "resume it with the value it ran with"
            )
            + ", or remove that folder"
        )

    def evaluated(self, step):
        return any(e["step"] == step for e in self.history)

    @property
    def best(self):
        return best_of(self.history, self.metric, self.min_examples)

    def prefix(self, step):
        return os.path.join(self.directory, f"ckpt-{step}")

    def add(self, step, metrics):
        """Records the evaluation at `step`; saves the networks if it is the best so far. Returns
        True if it is. The new best is written before selection.json names it, and the old one
        removed after, so an interruption never leaves selection.json naming a missing file."""
        evaluation = {"step": step, **{k: metrics.get(k) for k in KEPT}}
        previous = self.best
        improved = previous is None or _key(evaluation, self.metric, self.min_examples) > _key(
            previous, self.metric, self.min_examples
        )
        self.history = [e for e in self.history if e["step"] != step] + [evaluation]
        if improved:
            self.checkpoint.write(self.prefix(step))
        if self.writer:
            write_json(self.path, self.summary())
        if improved and previous is not None and previous["step"] != step:
            for path in tf.io.gfile.glob(self.prefix(previous["step"]) + ".*"):
                tf.io.gfile.remove(path)
        value = evaluation[self.metric]
        if too_small(evaluation, self.min_examples):
            size = evaluation["num_examples"]
            note = f" ({size} images, under --min_val_examples: the last is kept)"
        else:
            note = " (best so far)" if improved else f" (best: step {self.best['step']})"
        log.info(
            "val (%s) at step %d: %s=%.4g%s",
            self.split,
            step,
            self.metric,
            float("nan") if value is None else value,
            note,
        )
        return improved

    def validate(self, method, summaries, step):
        """Evaluates the validation split at `step` (once) and keeps the networks if they are the
        best so far."""
        if self.evaluated(step):
            return
        metrics = validation_scores(method, method.cfg)
        summaries.scalars(scalar_metrics(metrics), step, prefix="val/")
        self.add(step, metrics)

    def restore_best(self):
        """Loads the best networks into the method; returns the best evaluation."""
        best = self.best
        prefix = self.prefix(best["step"])
        if not tf.io.gfile.exists(prefix + ".index"):  # another worker, resumed: the chief's copy
            prefix = os.path.join(self.run_dir, BEST_DIR, f"ckpt-{best['step']}")
        self.checkpoint.read(prefix).assert_existing_objects_matched()
        how = "kept the last checkpoint, step %d (too few val images to choose): val %s=%.4g (%s)"
        log.info(
            how
            if too_small(best, self.min_examples)
            else "chose the checkpoint of step %d by val %s=%.4g (%s)",
            best["step"],
            self.metric,
            float("nan") if best[self.metric] is None else best[self.metric],
            self.split,
        )
        return best

    def summary(self):
        best = self.best
        return {
            "metric": self.metric,
            "split": self.split,
            "best_step": best["step"] if best else None,
            "best": best,
            "kept_last": bool(best) and too_small(best, self.min_examples),
            "min_val_examples": self.min_examples,
            "history": sorted(self.history, key=lambda e: e["step"]),
        }


def for_run(cfg, method, run_dir, is_chief, checkpoint_dir):
    """The run's BestCheckpoint, or None without --best_checkpoint_metric."""
    if cfg.best_checkpoint_metric == "none":
        return None
    if not method.has_classifier():
        raise ConfigError(
            f"--best_checkpoint_metric: --mode={method.job} has no classifier to evaluate on "
            "--val_split; leave it at none"
        )
    scratch = "" if is_chief else os.path.join(checkpoint_dir, BEST_DIR)
    return BestCheckpoint(
        run_dir,
        cfg.best_checkpoint_metric,
        cfg.val_split,
        method.checkpoint_items(),
        is_chief,
        scratch,
        cfg.min_val_examples,
    )
