"""Finding checkpoints and rebuilding a trained run's method from them (eval, export, fine-tune,
distill)."""

import dataclasses
import glob
import logging
import os
import time

import tensorflow as tf

from tfssl.config import ARCHITECTURE_FIELDS, Config
from tfssl.errors import CheckpointError
from tfssl.train.rundir import FLAGS_FILE, RESULT_FILE, read_json

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
)


@dataclasses.dataclass(frozen=True)
class Resolved:
    run_dir: str
    prefix: str = ""  # a tf.train checkpoint prefix
    saved_model_dir: str = ""  # an exported SavedModel


def resolve_checkpoint(path, flag="--checkpoint", allow_saved_model=False):
    """A model_dir (its latest checkpoint), a checkpoint prefix, or (if allowed) a SavedModel
    directory."""
    if not path or not (os.path.exists(path) or glob.glob(path + ".index")):
        raise CheckpointError(
            f"{flag}={path} does not exist; give a model_dir or a checkpoint prefix "
            "such as runs/pretrain/ckpt-469"
        )
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            if not allow_saved_model:
                raise CheckpointError(
                    f"{flag}={path} is a SavedModel; give the run's model_dir instead"
                )
            return Resolved(run_dir=path, saved_model_dir=path)
        prefix = tf.train.latest_checkpoint(path)
        if not prefix:
            raise CheckpointError(
                f"{flag}={path} holds no checkpoint (no 'checkpoint' file); has its run "
                "saved one yet?"
            )
        return Resolved(run_dir=path, prefix=prefix)
    return Resolved(run_dir=os.path.dirname(path) or ".", prefix=path)


def run_config(run_dir, flag="--checkpoint"):
    """The Config a run was trained with (from its flags.json)."""
    path = os.path.join(run_dir, FLAGS_FILE)
    if not os.path.exists(path):
        raise CheckpointError(f"{flag}: {run_dir} has no {FLAGS_FILE}; it was not written by tfssl")
    values = read_json(path)
    known = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in values.items() if k in known}), values.get("job", "pretrain")


def with_architecture_of(cfg, trained_cfg):
    """cfg with the network fields of a trained run (a fine-tune inherits its pretrained
    network)."""
    return cfg.replace(**{name: getattr(trained_cfg, name) for name in ARCHITECTURE_FIELDS})


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


def restore_into(items, prefix, what):
    """Restores trackables {name: object} from prefix; raises CheckpointError if they do not fit."""
    try:
        status = tf.train.Checkpoint(**items).restore(prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        first_line = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{what} {prefix} does not fit the network asked for ({first_line}); use the "
            "same architecture flags it was trained with"
        ) from None


def load_trained(path, cfg=None, flag="--checkpoint", strategy=None, setup=True):
    """(method, data, resolved, trained_config) for a trained run, with its weights restored.

    setup=False leaves the seed and precision policy alone (loading a teacher inside another
    run)."""
    from tfssl.data.pipeline import DataBundle
    from tfssl.jobs import setup_runtime
    from tfssl.methods import method_class

    resolved = resolve_checkpoint(path, flag)
    trained_cfg, job = run_config(resolved.run_dir, flag)
    run_cfg = eval_config(cfg, trained_cfg) if cfg is not None else trained_cfg
    if setup:
        setup_runtime(run_cfg.replace(deterministic=False))
    strategy = strategy or tf.distribute.get_strategy()
    data = DataBundle(run_cfg, resolved.run_dir)
    method = method_class(job)(run_cfg, data, strategy.num_replicas_in_sync)
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
