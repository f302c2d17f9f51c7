"""Rebuilding a trained run's method from its checkpoint: --mode=eval, and for export, figures and
teachers."""

import logging
import os
import time

import tensorflow as tf

from tfssl.config import Config
from tfssl.methods import method_class
from tfssl.train.checkpoints import resolve_checkpoint, restore_into, run_config
from tfssl.train.rundir import RESULT_FILE

log = logging.getLogger("tfssl")

# Flags that describe how to evaluate, not how the run was trained: the caller's value wins.
EVAL_FIELDS = (
    "data_dir",
    "eval_split",
    "eval_batch_size",
    "eval_steps",
    "strategy",
    "precision",
    "export_dir",
    "eval_wait",
    "eval_timeout_secs",
    "log_every_secs",
    "skip_corrupt_images",
    "dataset",
    "val_split",
    "positive_class",
    "cache_dataset",
    "cache_dir",
)


def eval_config(cfg, trained_cfg):
    """The trained run's config, with the evaluation fields the caller set (differing from the
    defaults)."""
    defaults = Config()
    changes = {
        name: getattr(cfg, name)
        for name in EVAL_FIELDS
        if getattr(cfg, name) != getattr(defaults, name)
    }
    return trained_cfg.replace(**changes)


def load_trained(path, cfg=None, flag="--checkpoint", strategy=None, setup=True):
    """(method, data, resolved, trained_config) for a trained run, with its weights restored.

    setup=False leaves the seed and precision policy alone (loading a teacher inside another
    run)."""
    from tfssl.data.pipeline import DataBundle
    from tfssl.train.runtime import setup_runtime

    resolved = resolve_checkpoint(path, flag)
    trained_cfg, _ = run_config(resolved.run_dir, flag)
    run_cfg = eval_config(cfg, trained_cfg) if cfg is not None else trained_cfg
    if setup:
        setup_runtime(run_cfg.replace(deterministic=False))
    strategy = strategy or tf.distribute.get_strategy()
    data = DataBundle(run_cfg, resolved.run_dir)
    method = method_class(run_cfg)(run_cfg, data, strategy.num_replicas_in_sync)
    with strategy.scope():
        method.build()
    restore_into(method.checkpoint_items(), resolved.prefix, "checkpoint")
    return method, data, resolved, run_cfg


def _training_over(directory, idle_limit_secs):
    """For checkpoints_iterator: stop once the run wrote its result, or after idle_limit_secs
    without news."""
    last_news = [time.time(), tf.train.latest_checkpoint(directory)]

    def over():
        latest = tf.train.latest_checkpoint(directory)
        if latest != last_news[1]:
            last_news[:] = [time.time(), latest]
        return (
            os.path.exists(os.path.join(directory, RESULT_FILE))
            or time.time() - last_news[0] > idle_limit_secs
        )

    return over


def evaluate_checkpoints(cfg):
    """--mode=eval: evaluates a checkpoint (or, with --eval_wait, each new one) and writes result
    JSON."""
    from tfssl.train.evaluate import evaluate_all, metrics_text
    from tfssl.train.rundir import write_json

    path = cfg.checkpoint or cfg.model_dir
    prefixes = [None]
    if cfg.eval_wait:
        directory = path if os.path.isdir(path) else os.path.dirname(path)
        prefixes = tf.train.checkpoints_iterator(
            directory,
            timeout=min(cfg.eval_timeout_secs, 10),
            timeout_fn=_training_over(directory, cfg.eval_timeout_secs),
        )
    result = None
    for prefix in prefixes:
        method, data, resolved, run_cfg = load_trained(prefix or path, cfg)
        step = (
            int(resolved.prefix.rsplit("-", 1)[-1])
            if resolved.prefix.rsplit("-", 1)[-1].isdigit()
            else 0
        )
        metrics = evaluate_all(method, run_cfg)
        shown = metrics_text(metrics, ".4f")
        log.info("eval of %s on %s: %s", resolved.prefix, run_cfg.eval_split, shown)
        result = {
            "checkpoint": resolved.prefix,
            "global_step": step,
            "eval_split": run_cfg.eval_split,
            "eval": metrics,
        }
        write_json(
            os.path.join(
                resolved.run_dir, f"eval_{run_cfg.eval_split.replace('/', '_')}_{step}.json"
            ),
            result,
        )
        print(f"{shown} checkpoint={resolved.prefix}")
    return result
