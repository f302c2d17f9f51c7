"""Finding a run's checkpoints and restoring them, with one-line errors when they do not fit.

A checkpoint may also be one that the official SimCLR TF2 code (google-research/simclr, tf2/run.py)
wrote, or the variables of a SavedModel it exported; `Resolved.official` says so.
"""

import dataclasses
import glob
import os

import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from tfssl.config import Config
from tfssl.errors import CheckpointError
from tfssl.train.rundir import FLAGS_FILE, read_json


@dataclasses.dataclass(frozen=True)
class Resolved:
    run_dir: str
    prefix: str = ""  # a tf.train checkpoint prefix
    saved_model_dir: str = ""  # an exported SavedModel
    official: bool = False  # written by the official SimCLR TF2 code (prefix set, run_dir its dir)


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
            variables = os.path.join(path, "variables", "variables")
            if glob.glob(variables + ".index") and is_official(variables):
                return Resolved(run_dir=path, prefix=variables, official=True)
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
        return Resolved(run_dir=path, prefix=prefix, official=is_official(prefix))
    return Resolved(run_dir=os.path.dirname(path) or ".", prefix=path, official=is_official(path))


# Edges of a SavedModel's object graph that lead to a variable a second time (Keras' own lists).
_REPEAT_EDGES = {
    "variables",
    "trainable_variables",
    "non_trainable_variables",
    "regularization_losses",
    "keras_api",
    "metrics",
    "layer_regularization_losses",
    "layer_metrics",
    "signatures",
    "trainable_variables_list",
}


def checkpoint_variables(prefix, root="model"):
    """(reader, {object path: checkpoint key}) for every variable below the root object's child
    `root` in a TF2 object-based checkpoint, a SavedModel's `variables/variables` included (there
    the keys are not the paths). A path is its attribute names from the root, e.g.
    model/encoder/stem_0/conv/_kernel: the one that tf.train.Checkpoint(model=...) would give,
    whatever else (an optimizer) the checkpoint holds."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except (tf.errors.OpError, ValueError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{prefix} is not a TF2 checkpoint ({first}); give a model_dir, a checkpoint prefix "
            "or an official SavedModel directory"
        ) from None
    start = [c.node_id for c in graph.nodes[0].children if c.local_name == root]
    paths, queue, seen = {}, [(start[0], (root,))] if start else [], set(start)
    while queue:  # breadth first: the first path found is the one TF names the variable by
        node, path = queue.pop(0)
        for attribute in graph.nodes[node].attributes:
            if attribute.name == "VARIABLE_VALUE":
                paths["/".join(path)] = attribute.checkpoint_key
        for child in graph.nodes[node].children:
            name = child.local_name
            repeated = name in _REPEAT_EDGES or name.startswith(("__", "call_", "trace_"))
            # Keras' `layers` lists repeat every sublayer; the official BlockGroup's own list
            # (block_groups/<g>/layers) is the one to follow.
            repeated |= name == "layers" and not (len(path) >= 2 and path[-2] == "block_groups")
            if not repeated and child.node_id not in seen:
                seen.add(child.node_id)
                queue.append((child.node_id, (*path, name)))
    return reader, paths


def is_official(prefix):
    """Whether a checkpoint holds the official SimCLR TF2 model (model/resnet_model/...)."""
    try:
        _, paths = checkpoint_variables(prefix)
    except CheckpointError:
        return False
    return any(p.startswith("model/resnet_model/") for p in paths)


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
