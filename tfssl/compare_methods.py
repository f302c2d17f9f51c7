"""The methods --mode=compare can run (COMPARE_METHODS: one Spec and one recipe file each) and
how long each run trains (BUDGETS).

Each run's steps follow from epochs over its own training data:

    steps = min(max(ceil(epochs * examples_per_epoch / batch_size), floor), ceiling)

with examples_per_epoch the run's Method.examples_per_epoch (the labeled subset for supervised,
fine-tuning and linear-probe runs; all train images for pretraining and distillation; the
method's own definition otherwise, e.g. Mean Teacher's labeled batch against all images, the
SS-VAE's unlabeled images), batch_size the recipe's --train_batch_size, and (epochs, floor,
ceiling) from BUDGETS[role][--budget]. The floor gives small data sets enough updates; the
ceiling bounds large ones. The report states each run's epochs and steps.
"""

import collections
import dataclasses
import math

from tfssl.errors import ConfigError

Rule = collections.namedtuple("Rule", "epochs floor ceiling")

# role: {budget: Rule(epochs, floor steps, ceiling steps)}. small: supervised + simclr (with its
# probe) + simclr_distill at 1/10/100% of MNIST, one seed, in an hour on 2 cores (BENCHMARKS.md).
# Distillation's 10 epochs are its recipe's; with 2 epochs its students ended below their teachers
# (by 0.2 point on MNIST, by 8.6 on HAM10000, where 2 epochs are 55 steps).
BUDGETS = {
    "pretrain": dict(tiny=Rule(1, 2, 6), small=Rule(4, 500, 5000), full=Rule(30, 5000, 50000)),
    "labeled": dict(tiny=Rule(1, 2, 6), small=Rule(50, 200, 1500), full=Rule(100, 600, 10000)),
    "distill": dict(tiny=Rule(1, 2, 6), small=Rule(10, 500, 1500), full=Rule(10, 1000, 10000)),
    "mean_teacher": dict(
        tiny=Rule(1, 2, 6), small=Rule(0.5, 1000, 3000), full=Rule(2.5, 5000, 30000)
    ),
    "ladder": dict(tiny=Rule(1, 2, 6), small=Rule(5, 1000, 3000), full=Rule(60, 10000, 36000)),
    "ssvae": dict(tiny=Rule(1, 2, 6), small=Rule(10, 1000, 6000), full=Rule(50, 5000, 30000)),
    # FixMatch: epochs of its unlabeled stream counted in labeled batches; self_train: per round.
    "fixmatch": dict(tiny=Rule(1, 2, 6), small=Rule(1, 600, 3000), full=Rule(10, 10000, 100000)),
    "self_train": dict(tiny=Rule(1, 2, 6), small=Rule(20, 200, 1000), full=Rule(50, 1000, 5000)),
}


def budget_steps(rule, examples_per_epoch, batch_size):
    """The budget rule (see the module docstring)."""
    steps = math.ceil(rule.epochs * examples_per_epoch / batch_size)
    return min(max(steps, rule.floor), rule.ceiling)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One compared method: its --mode, its BUDGETS role, its name in the report, the SSL method
    whose shared pretraining it starts from, the method whose run (same labels and seed) is its
    teacher, the method whose run it starts from (its --checkpoint), the methods that always run
    beside it, and its grid: (run flag, comparison flag listing its values) pairs, one run per
    combination, validation choosing. Its recipe is <method name>.cfg."""

    job: str
    budget: str
    label: str
    pretrain: str = ""
    teacher: str = ""
    init: str = ""
    also: tuple = ()
    grid: tuple = ()


GRID = (  # fine-tuning's grid
    ("learning_rate", "finetune_learning_rates"),
    ("crop_min_area", "finetune_crop_min_areas"),
)


COMPARE_METHODS = {
    "supervised": Spec("supervised", "labeled", "supervised"),
    "simclr": Spec(
        "finetune", "labeled", "SimCLR fine-tuned", "simclr", init="simclr_linear", grid=GRID
    ),
    "simclr_linear": Spec("finetune", "labeled", "SimCLR linear probe", "simclr"),
    "simclr_distill": Spec("distill", "distill", "SimCLR distilled", teacher="simclr"),
    "mean_teacher": Spec("mean_teacher", "mean_teacher", "Mean Teacher"),
    "ladder": Spec("ladder", "ladder", "Ladder"),
    "ssvae": Spec("ssvae", "ssvae", "SS-VAE M2"),
    "byol": Spec("finetune", "labeled", "BYOL fine-tuned", "byol"),
    "simsiam": Spec("finetune", "labeled", "SimSiam fine-tuned", "simsiam"),
    "moco": Spec("finetune", "labeled", "MoCo v2 fine-tuned", "moco"),
    "fixmatch": Spec("fixmatch", "fixmatch", "FixMatch"),
    "self_train": Spec("self_train", "self_train", "curriculum self-training", teacher="simclr"),
    "rotation": Spec("finetune", "labeled", "rotation fine-tuned", "rotation"),
    "jigsaw": Spec("finetune", "labeled", "jigsaw fine-tuned", "jigsaw"),
    "context_encoder": Spec("finetune", "labeled", "context encoder fine-tuned", "context_encoder"),
    "colorization": Spec("finetune", "labeled", "colorization fine-tuned", "colorization"),
    "mae": Spec("finetune", "labeled", "MAE fine-tuned", "mae"),
}


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
        for before in (spec.teacher, spec.init):
            if before:
                add(before)
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

    data = DataBundle(cfg, cfg.run_dir)
    if cfg.job == "self_train":  # a round's steps: its labels (pseudo-labels come later)
        return data.num_examples("labeled")
    return method_class(cfg)(cfg, data).examples_per_epoch
