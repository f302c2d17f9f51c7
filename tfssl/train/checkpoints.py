"""Finding a run's checkpoints and restoring them, with one-line errors when they do not fit."""

import dataclasses
import glob
import os

import tensorflow as tf

from tfssl.config import Config
from tfssl.errors import CheckpointError
from tfssl.train.rundir import FINAL_RUN_FILE, FLAGS_FILE, read_json


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
    if os.path.isdir(path) and os.path.exists(os.path.join(path, FINAL_RUN_FILE)):
        path = os.path.join(path, read_json(os.path.join(path, FINAL_RUN_FILE))["run_dir"])
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
    """(the Config a run was trained with, its job), from its flags.json."""
    path = os.path.join(run_dir, FLAGS_FILE)
    if not os.path.exists(path):
        raise CheckpointError(f"{flag}: {run_dir} has no {FLAGS_FILE}; it was not written by tfssl")
    values = read_json(path)
    known = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in values.items() if k in known}), values.get("job", "pretrain")


def restore(checkpoint, prefix, what, target, fix, partial=True):
    """Restores a tf.train.Checkpoint from prefix. Every object it holds must be in the file;
    partial=True lets the file hold more (e.g. an optimizer). Raises a one-line CheckpointError,
    "<what> <prefix> does not fit <target> (<reason>); <fix>", when they do not fit."""
    try:
        status = checkpoint.restore(prefix)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        first_line = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{what} {prefix} does not fit {target} ({first_line}); {fix}"
        ) from None
    return status


def restore_into(items, prefix, what):
    """Restores trackables {name: object} from prefix; raises CheckpointError if they do not fit."""
    return restore(
        tf.train.Checkpoint(**items),
        prefix,
        what,
        "the network asked for",
        "use the same architecture flags it was trained with",
    )
