"""Recipe flagfiles: the flags of the best known run of one method, read without absl.

A recipe is an absl flagfile (`python run.py --flagfile=PATH` runs it): one `--name=value` per
line, `--name` / `--noname` for booleans, `#` comment lines and blank lines. Its header (the
comments) gives the command, the time and the result it measured. --mode=compare reads recipes
itself, since only run.py reads absl FLAGS: every flag must be a field of tfssl.config.Config, and
each value is converted to the field's type; anything else is a one-line ConfigError naming the
file and line.

Recipes live in one directory (configs/compare/ by default). For --dataset=D the recipe NAME is
`<D>_NAME.cfg` when that file exists (D with ':' and '/' as '_', e.g. mnist_mean_teacher.cfg),
else the general `NAME.cfg`.
"""

import dataclasses
import os

from tfssl.config import Config, dataset_slug
from tfssl.errors import ConfigError

FIELDS = {f.name: f for f in dataclasses.fields(Config)}
TRUE, FALSE = ("true", "t", "1", "yes"), ("false", "f", "0", "no")

# --mode=compare (tfssl/compare.py): flags a comparison passes on to every run it starts (from its
# own command line).
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
    "cache_dir",
    "log_every_secs",
    "skip_corrupt_images",
    "folder_groups",
    "split_seed",
    "intensity_window",
    "positive_class",
    "class_weight",
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
    "val_split",
    "labeled_val_fraction",
    "best_checkpoint_metric",
    "min_val_examples",
    "checkpoint_steps",
    "checkpoint_epochs",
    "finetune_learning_rates",
    "finetune_crop_min_areas",
)


def default_recipe_dir():
    """configs/compare/ of the checkout this package belongs to."""
    package = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(package), "configs", "compare")


def _convert(name, text, where):
    kind = FIELDS[name].type
    if kind is bool:
        if text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
        raise ConfigError(f"{where}: --{name}={text} is not a boolean (true or false)")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(
                f"{where}: --{name}={text} is not {'an integer' if kind is int else 'a number'}"
            )
    return text


def parse_flags(text, source="<recipe>"):
    """{field: value} from flagfile text; a later line overrides an earlier one, as in absl."""
    flags = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        if not line.startswith("--"):
            raise ConfigError(f"{where}: {line!r} is not a flag; write --name=value")
        name, has_value, value = line[2:].partition("=")
        if name == "flagfile":
            raise ConfigError(f"{where}: a recipe cannot include another flagfile")
        if not has_value:  # --name / --noname: a boolean
            if name in FIELDS and FIELDS[name].type is bool:
                flags[name] = True
                continue
            if name.startswith("no") and name[2:] in FIELDS and FIELDS[name[2:]].type is bool:
                flags[name[2:]] = False
                continue
            if name in FIELDS:
                raise ConfigError(f"{where}: --{name} needs a value: --{name}=...")
        if name not in FIELDS:
            raise ConfigError(f"{where}: --{name} is not a tfssl flag (python run.py --help)")
        flags[name] = _convert(name, value.strip(), where)
    return flags


def recipe_path(recipe_dir, dataset, name):
    """The dataset's own recipe NAME if there is one, else the general one."""
    for file_name in (f"{dataset_slug(dataset)}_{name}.cfg", f"{name}.cfg"):
        path = os.path.join(recipe_dir, file_name)
        if os.path.exists(path):
            return path
    raise ConfigError(
        f"no recipe {name}.cfg in {recipe_dir}; pass --recipe_dir=<directory of recipe flagfiles>"
    )


def read_recipe(path, job, controlled=()):
    """A recipe's flags for `job`: its --mode (if given) must be job, and it must not set the flags
    in `controlled` (those a comparison sets for every run)."""
    with open(path) as f:
        flags = parse_flags(f.read(), path)
    mode = flags.pop("mode", job)
    if mode != job:
        raise ConfigError(f"{path}: --mode={mode}, but this recipe is read for --mode={job}")
    taken = sorted(set(flags) & set(controlled))
    if taken:
        raise ConfigError(
            f"{path}: --{taken[0]} is set by --mode=compare for every run; "
            "remove it from the recipe"
        )
    return flags
