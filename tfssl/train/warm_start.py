"""Starting a network from a checkpoint: a tfssl run or one written by the official SimCLR TF2 code
(tf2/run.py, or a SavedModel it exported), restoring the variables --variable_schema selects.

--variable_schema is matched (re.match, as the official code did) against each variable's name in
the checkpoint with its top scope spelled as in the official code: `base_model/` (the ResNet),
`head_contrastive/` (the projection head) and `head_supervised/` (the linear head). The official
linear-evaluation line's '(?!global_step|(?:.*/|^)Momentum|head)' thus restores the ResNet only.
"""

import collections
import logging
import os
import re

import keras
import tensorflow as tf

from tfssl.errors import CheckpointError, ConfigError
from tfssl.models.official import PROJECTION_LAYER, official_architecture, official_names
from tfssl.train.checkpoints import checkpoint_variables
from tfssl.train.rundir import FLAGS_FILE, read_json

log = logging.getLogger("tfssl")

# The top scopes: (tfssl checkpoint path prefix, official TF2 path prefix, official scope name).
SCOPES = (
    ("model/encoder/", "resnet_model/", "base_model/"),
    ("model/projection_head/", "_projection_head/", "head_contrastive/"),
    ("model/supervised_head/", "supervised_head/", "head_supervised/"),
)


def schema_name(path, official=False):
    """A checkpoint path as --variable_schema sees it: its top scope renamed as in the official
    code, e.g. model/encoder/stem_0/conv/_kernel -> base_model/stem_0/conv/_kernel."""
    for tfssl_prefix, official_prefix, scope in SCOPES:
        prefix = official_prefix if official else tfssl_prefix
        if path.startswith(prefix):
            return scope + path[len(prefix) :]
    return path


def compile_schema(schema):
    try:
        return re.compile(schema)
    except re.error as e:
        raise ConfigError(f"--variable_schema={schema!r} is not a regular expression ({e})")


def tfssl_paths(model):
    """{checkpoint path: variable} of model as tf.train.Checkpoint(model=model) names them."""
    root = tf.train.Checkpoint(model=model)
    view = tf.train.TrackableView(root)
    paths, queue, seen = {}, collections.deque([(root, "")]), {id(root)}
    while queue:  # breadth first, as the checkpoint names each variable by its first path
        obj, path = queue.popleft()
        for name, child in view.children(obj).items():
            if id(child) in seen:
                continue
            seen.add(id(child))
            child_path = f"{path}/{name}" if path else name
            if isinstance(child, (tf.Variable, keras.Variable)):
                paths[child_path] = child
            queue.append((child, child_path))
    return paths


def read_official(prefix):
    """(reader, {official path below model/: checkpoint key}, network dict) of an official
    checkpoint; the network as tfssl.models.official.official_architecture gives it."""
    reader, paths = checkpoint_variables(prefix)
    model_paths = {p[len("model/") :]: k for p, k in paths.items() if p.startswith("model/")}
    shapes = reader.get_variable_to_shape_map()
    try:
        network = official_architecture({p: shapes[k] for p, k in model_paths.items()})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"official checkpoint {prefix}: {e}") from None
    return reader, model_paths, network


def _check_stem(prefix, theirs, ours):
    if ours != theirs:
        raise CheckpointError(
            f"official checkpoint {prefix} has the {'CIFAR' if theirs else 'ImageNet'} stem (first "
            "convolution and what follows), built for images of "
            f"{'32 px or less' if theirs else 'over 32 px'}, and these images get the other one: "
            f"set --image_size={32 if theirs else 224}"
        )


def _official_targets(model, prefix, source):
    """{official path: variable}, after checking that every official variable has its place."""
    targets = official_names(model)
    reader = source[0]
    _check_stem(prefix, source[2]["cifar_stem"], model.encoder._config["cifar_stem"])
    kept = len(model.projection_head.linear_layers)
    for path in source[1]:
        if path in targets:
            continue
        layer = PROJECTION_LAYER.match(path)
        if (layer and int(layer.group(1)) >= kept) or (
            path.startswith("supervised_head/") and model.supervised_head is None
        ):
            continue  # a projection layer or head this network leaves out
        raise CheckpointError(
            f"official checkpoint {prefix} does not fit tfssl's SimCLR network (its variable "
            f"model/{path} {reader.get_variable_to_shape_map()[source[1][path]]} maps to none); "
            "only the official tf2/ ResNet with its heads converts"
        )
    return targets


def _value(reader, key, variable, first_conv, what, prefix, path):
    """The checkpoint's value for variable, checked for shape. A colour checkpoint's first
    convolution serves grayscale images summed over its input channels: exactly the network
    applied to the gray image repeated in three channels."""
    value = reader.get_tensor(key)
    if variable is first_conv and value.ndim == 4 and value.shape[:2] != tuple(variable.shape[:2]):
        raise CheckpointError(
            f"{what}={prefix} has a {value.shape[0]}x{value.shape[1]} first convolution and this "
            f"network a {variable.shape[0]}x{variable.shape[1]} one; the stem follows the image "
            "size (32 px or less: the CIFAR stem's 3x3): set "
            f"--image_size={32 if value.shape[0] == 3 else 224}"
        )
    if variable is first_conv and value.shape[2] == 3 and variable.shape[2] == 1:
        log.info("grayscale images: the first convolution's RGB kernels are summed")
        value = value.sum(axis=2, keepdims=True)
    if tuple(value.shape) != tuple(variable.shape):
        raise CheckpointError(
            f"{what}={prefix} does not fit the network asked for ({path} has shape "
            f"{list(value.shape)}, not {list(variable.shape)}); use the architecture flags it "
            "was trained with"
        )
    return value


def warm_start(model, prefix, official, schema=".*", what="--checkpoint"):
    """Assigns model's variables that `schema` selects from the checkpoint at prefix (tfssl or
    official); returns {scope: number restored}. A selected variable missing from the checkpoint
    or of another shape is a one-line CheckpointError naming it."""
    pattern = compile_schema(schema)
    if official:
        source = read_official(prefix)
        reader, keys = source[0], source[1]
        targets = _official_targets(model, prefix, source)
    else:
        reader, keys = checkpoint_variables(prefix)
        targets = tfssl_paths(model)
    stem = getattr(model.encoder, "stem", None)  # a ViT (MAE's encoder) has patch embedding
    first_conv = stem[0].conv.kernel if stem is not None else None
    restored = collections.Counter()
    for path, variable in targets.items():
        name = schema_name(path, official)
        if not pattern.match(name):
            continue
        shown = f"model/{path}" if official else path
        if path not in keys:
            raise CheckpointError(
                f"{what}={prefix} does not fit the network asked for (it has no {shown}, named "
                f"{name} for --variable_schema); use the architecture flags it was trained with, "
                "or leave that variable out with --variable_schema"
            )
        value = _value(reader, keys[path], variable, first_conv, what, prefix, shown)
        variable.assign(tf.cast(value, variable.dtype))
        restored[name.split("/")[0]] += 1
    if not restored:
        raise CheckpointError(
            f"--variable_schema={schema!r} selects no variable of {what}={prefix}; names look "
            "like base_model/..., head_contrastive/..., head_supervised/..."
        )
    log.info(
        "restored %s from %s%s",
        ", ".join(f"{n} {scope} variables" for scope, n in sorted(restored.items())),
        prefix,
        " (official SimCLR TF2 checkpoint)" if official else "",
    )
    return dict(restored)


def official_network(prefix):
    """The Config fields an official checkpoint fixes (depth, width, SK, SE, projection head)
    and, apart, {'cifar_stem', 'channels', 'num_classes'}."""
    network = dict(read_official(prefix)[2])
    extra = {k: network.pop(k) for k in ("cifar_stem", "channels", "num_classes")}
    return network, extra


def official_head_input(resolved):
    """The linear head's input layer (ft_proj_selector) of an official run, from the flags.json
    that tf2/run.py writes beside its checkpoints; None where there is none."""
    path = os.path.join(resolved.run_dir, FLAGS_FILE)
    if not os.path.exists(path):
        return None
    values = read_json(path)
    if "train_mode" not in values or "ft_proj_selector" not in values:
        return None
    selector = int(values["ft_proj_selector"])
    return int(values.get("num_proj_layers", 3)) if selector == -1 else selector


def official_model(cfg, resolved, image_shape, what="--checkpoint", num_replicas=1):
    """(SimCLRModel with an official checkpoint's weights, cfg with its network, {'cifar_stem',
    'channels', 'num_classes'}). The linear head reads the projection layer its flags.json names,
    else --ft_proj_selector's; cfg None: the defaults."""
    from tfssl.config import Config
    from tfssl.models.factory import CIFAR_STEM_MAX_SIZE, build_simclr_model

    cfg = cfg or Config()
    network, extra = official_network(resolved.prefix)
    _check_stem(resolved.prefix, extra["cifar_stem"], image_shape[0] <= CIFAR_STEM_MAX_SIZE)
    cfg = cfg.replace(**network)
    head_input = official_head_input(resolved)
    model = build_simclr_model(
        cfg,
        extra["num_classes"],
        image_shape,
        num_replicas,
        ft_proj_selector=cfg.proj_layers_kept if head_input is None else head_input,
        stop_gradient_to_head=True,
    )
    warm_start(model, resolved.prefix, True, ".*", what)
    return model, cfg.replace(ft_proj_selector=model.ft_proj_selector), extra
