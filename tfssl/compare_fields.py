"""The flags of choices on held-out labels and of --mode=compare, mixed into tfssl.config.Config."""

import dataclasses

from tfssl.fields import BELOW_ONE, NON_NEGATIVE, POSITIVE, field, numbers_where


@dataclasses.dataclass(frozen=True)
class ValidationFields:
    """A validation split carved from the labels, and what it chooses."""

    labeled_val_fraction: float = field(
        0.0,
        "Share of the labeled subset held out as a stratified validation split (at least one "
        "image per class, chosen by --label_seed, saved in label_subset.json); the run fits on "
        "the rest. Name it with --val_split=labeled_val. --mode=compare: 0 means 0.2.",
        valid=BELOW_ONE,
    )
    best_checkpoint_metric: str = field(
        "none",
        "Evaluate --val_split before the first step and at every checkpoint, keep the best "
        "checkpoint by this metric (ties: the lower val loss) as the run's model, and evaluate "
        "the eval split once, on it. --mode=compare: none means balanced_accuracy.",
        ("none", "balanced_accuracy", "top_1_accuracy", "auroc", "loss"),
    )
    min_val_examples: int = field(
        100,
        "A validation split with fewer images cannot choose (one image is over a point): the run "
        "keeps its last checkpoint, still logging the val scores, and a --mode=compare grid "
        "keeps its recipe's values.",
        valid=NON_NEGATIVE,
    )


@dataclasses.dataclass(frozen=True)
class CompareFields:
    """--mode=compare: the label-efficiency study and the fine-tuning grid it chooses from."""

    finetune_learning_rates: str = field(
        "0.02,0.1",
        "Compare: fine-tuning learning rates (per 256) tried for every fine-tuned run; the "
        "validation split chooses (empty: the recipe's).",
        valid=numbers_where(lambda v: v > 0, "positive"),
    )
    finetune_crop_min_areas: str = field(
        "0.3,0.8",
        "Compare: fine-tuning crop strengths (--crop_min_area) tried with each learning rate; "
        "the validation split chooses (empty: the recipe's).",
        valid=numbers_where(lambda v: 0 < v <= 1, "in (0, 1]"),
    )
    label_fractions: str = field(
        "0.01,0.1,1.0",
        "Compare: label fractions.",
        valid=numbers_where(lambda v: 0 < v <= 1, "in (0, 1]"),
    )
    methods: str = field(
        "supervised,simclr,simclr_distill",
        "Compare: methods to run (simclr brings its linear probe simclr_linear; "
        "simclr_distill its teacher simclr).",
    )
    budget: str = field(
        "small",
        "Compare: steps per run from epochs over its own training data, with a floor and "
        "a ceiling (tfssl/compare_methods.py).",
        ("tiny", "small", "full"),
    )
    seeds: int = field(
        1,
        "Compare: runs per method and fraction; run k uses --seed+k and --label_seed+k "
        "(the pretraining is shared).",
        valid=POSITIVE,
    )
    recipe_dir: str = field(
        "", "Compare: directory of recipe flagfiles (default: the checkout's configs/compare)."
    )
