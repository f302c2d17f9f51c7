"""The run configuration: one frozen dataclass, built by run.py from flags.

Field names follow the official SimCLR TF2 flags where one exists. Defaults are
for the embedded MNIST run (a few minutes on 2 CPU cores); the official
ImageNet defaults are in configs/imagenet_simclr_pretrain.cfg.
"""

import dataclasses
import os

from tfssl import official_flags
from tfssl.compare_fields import CompareFields, ValidationFields
from tfssl.data.subsets import LABELED_VAL
from tfssl.errors import ConfigError
from tfssl.fields import (
    BELOW_ONE,
    FRACTION,
    NON_NEGATIVE,
    NUMBER_LIST,
    POSITIVE,
    field,
)
from tfssl.jobs import JOBS, TRAINS_WITH
from tfssl.method_fields import (
    ContrastiveFields,
    DistillFields,
    FixMatchFields,
    LadderFields,
    MeanTeacherFields,
    MicleFields,
    MilFields,
    OfficialFields,
    PretextFields,
    SsvaeFields,
)
from tfssl.methods import METHODS, SSL_METHODS, lookup

# --mode: every job in the dispatch table, and the official spellings train / train_then_eval.
MODES = (*JOBS, "train", "train_then_eval")

# Fields that define the network; a checkpoint only restores into the same values.
ARCHITECTURE_FIELDS = (
    "architecture",
    "resnet_depth",
    "width_multiplier",
    "sk_ratio",
    "se_ratio",
    "proj_head_mode",
    "proj_out_dim",
    "num_proj_layers",
    "ladder_hidden_sizes",
    "ladder_model",
    "ssvae_model",
    "ssvae_latent_dim",
    "ssvae_hidden_sizes",
    "vit_patch_size",
    "vit_depth",
    "vit_width",
    "vit_num_heads",
)


@dataclasses.dataclass(frozen=True)
class Config(
    MeanTeacherFields,
    LadderFields,
    SsvaeFields,
    ContrastiveFields,
    FixMatchFields,
    MilFields,
    PretextFields,
    MicleFields,
    DistillFields,
    OfficialFields,
    ValidationFields,
    CompareFields,
):
    """Every flag of a run. The shared ones are declared here; each method family's are in
    tfssl/method_fields.py, validation's and compare's in tfssl/compare_fields.py."""

    # --- job ---
    mode: str = field("pretrain", "Job to run.", MODES)
    train_mode: str = field(
        "",
        "Official spelling: with --mode=train, pretrain or finetune.",
        ("", "pretrain", "finetune"),
    )
    ssl_method: str = field(
        "simclr", "Pretraining objective for --mode=pretrain.", tuple(SSL_METHODS)
    )
    model_dir: str = field(
        "", "Run directory (checkpoints, summaries, results). Default: runs/<mode>-<dataset>."
    )
    strategy: str = field(
        "auto",
        "tf.distribute strategy; auto = mirrored over GPUs, one device for one "
        "GPU, the default strategy on CPU.",
        ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu"),
    )
    tpu_name: str = field("", "TPU name or grpc address for --strategy=tpu.")
    precision: str = field(
        "auto",
        "Compute precision. auto, resolved when a run starts (and kept when it resumes): "
        "mixed_float16 on GPUs of compute capability >= 7.0 (tensor cores), mixed_bfloat16 on "
        "TPUs and on CPUs with AMX or AVX512-BF16 (native bfloat16), float32 otherwise (bfloat16 "
        "is emulated, several times slower, on other CPUs).",
        ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    )
    jit_compile: bool = field(False, "XLA-compile the train step (helps on GPU, not on CPU).")
    steps_per_loop: int = field(50, "Train steps per tf.function call.", valid=POSITIVE)
    matmul_conv_grads: str = field(
        "auto",
        "auto, true or false: weight gradients of convolutions with outputs of 7x7 or less as "
        "matrix products (several times faster than oneDNN's on CPU). auto = on only on a CPU "
        "(GPUs and TPUs have fast kernels of their own). Strided 1x1 ones take them always: "
        "oneDNN's AVX2 kernel is wrong or crashes there.",
        valid=(
            lambda v: str(v).strip().lower() in ("auto", "true", "false", "1", "0", "yes", "no"),
            "must be auto, true or false",
        ),
    )
    seed: int = field(0, "Seed for weights, data order and augmentation.")
    deterministic: bool = field(False, "Enable TF op determinism (bit-identical reruns, slower).")
    log_every_secs: float = field(10.0, "Seconds between progress lines.")

    # --- data ---
    dataset: str = field("mnist", "tfds name, or folder:/path/to/root for your own images.")
    data_dir: str = field("", "tfds data_dir (default: tfds' own, ~/tensorflow_datasets).")
    train_split: str = field("train", "Split to train on.")
    eval_split: str = field("test", "Split to evaluate on.")
    cache_dataset: bool = field(
        True,
        "Decode and resize each split's images once and keep them (in memory, or in --cache_dir); "
        "later epochs read no image file.",
    )
    image_size: int = field(0, "Input image size; 0 = the dataset's own size.", valid=NON_NEGATIVE)
    skip_corrupt_images: bool = field(False, "Skip unreadable images in a folder dataset (warn).")

    # --- label subsets ---
    label_fraction: float = field(
        1.0,
        "Fraction of train labels kept (class-balanced).",
        valid=(FRACTION[0], "must be in (0, 1], e.g. 0.01 or 0.1"),
    )
    num_labels: int = field(
        0, "Number of labels kept (class-balanced); overrides label_fraction.", valid=NON_NEGATIVE
    )
    label_seed: int = field(0, "Seed choosing the labeled subset.")
    label_subset_file: str = field("", "Reuse the labeled subset saved in this JSON file.")

    # --- optimisation ---
    train_batch_size: int = field(256, "Global batch size.", valid=POSITIVE)
    train_epochs: float = field(2, "Epochs to train for.", valid=NON_NEGATIVE)
    train_steps: int = field(0, "Steps to train for; overrides train_epochs.", valid=NON_NEGATIVE)
    eval_batch_size: int = field(256, "Batch size for evaluation.", valid=POSITIVE)
    eval_steps: int = field(0, "Eval steps; 0 = the whole eval split.", valid=NON_NEGATIVE)
    learning_rate: float = field(
        1.0,
        "Learning rate per 256 examples (see learning_rate_scaling; official: 0.3).",
        valid=POSITIVE,
    )
    learning_rate_scaling: str = field(
        "linear",
        "LR scaling with batch size (constant: no scaling).",
        ("linear", "sqrt", "constant"),
    )
    warmup_epochs: float = field(
        0.2, "Epochs of linear warmup before cosine decay.", valid=NON_NEGATIVE
    )
    weight_decay: float = field(1e-6, "Weight decay.", valid=NON_NEGATIVE)
    optimizer: str = field("lars", "Optimizer.", ("lars", "momentum", "adam"))
    momentum: float = field(0.9, "Momentum for lars and momentum optimizers.")
    lr_schedule: str = field(
        "cosine",
        "Learning-rate schedule: linear warmup + cosine decay, constant, or FixMatch's "
        "lr0 cos(7 pi k / 16 K).",
        ("cosine", "constant", "fixmatch_cosine"),
    )
    batch_norm_decay: float = field(0.9, "Batch norm moving-average decay.", valid=BELOW_ONE)
    bn_recalibration_batches: int = field(
        0,
        "After training, re-estimate batch-norm statistics on this many "
        "eval_batch_size batches of clean train images (0 = keep the "
        "training averages, e.g. of Mean Teacher's noisy inputs).",
        valid=NON_NEGATIVE,
    )
    global_bn: bool = field(True, "Synchronise batch norm statistics across replicas.")
    checkpoint_epochs: float = field(1, "Epochs between checkpoints and summaries.")
    checkpoint_steps: int = field(
        0, "Steps between checkpoints; overrides checkpoint_epochs.", valid=NON_NEGATIVE
    )
    keep_checkpoint_max: int = field(5, "Checkpoints kept.", valid=POSITIVE)
    skip_nonfinite_steps: bool = field(False, "Skip steps with a NaN/Inf loss instead of stopping.")

    # --- network ---
    architecture: str = field(
        "auto",
        "Network; auto = the method's usual one.",
        ("auto", "resnet", "convlarge", "mlp", "vit"),
    )
    resnet_depth: int = field(18, "ResNet depth.", ("18", "34", "50", "101", "152", "200"))
    width_multiplier: float = field(
        0.25, "ResNet width multiplier (1 = 64 channels in the stem).", valid=POSITIVE
    )
    sk_ratio: float = field(
        0.0, "Selective-kernel ratio; > 0 enables SK (SimCLRv2 uses 0.0625).", valid=NON_NEGATIVE
    )
    se_ratio: float = field(0.0, "Squeeze-excitation ratio; > 0 enables SE.", valid=NON_NEGATIVE)

    # --- SimCLR ---
    temperature: float = field(0.2, "NT-Xent temperature.", valid=POSITIVE)
    hidden_norm: bool = field(True, "L2-normalise projections before NT-Xent.")
    proj_head_mode: str = field("nonlinear", "Projection head.", ("none", "linear", "nonlinear"))
    proj_out_dim: int = field(128, "Projection output size.", valid=POSITIVE)
    num_proj_layers: int = field(3, "Layers in the nonlinear projection head.", valid=POSITIVE)
    ft_proj_selector: int = field(0, "Projection layers kept for fine-tuning (0 = none, -1 = all).")
    color_jitter_strength: float = field(0.5, "Colour jitter strength s.")
    crop_min_area: float = field(
        0.3, "Smallest crop area fraction in random resized crops (official: 0.08).", valid=FRACTION
    )
    use_flip: bool = field(
        False, "Random horizontal flips in training augmentation (official: on; off for digits)."
    )
    use_blur: bool = field(True, "Gaussian blur (p=0.5) in pretraining augmentation.")
    lineareval_while_pretraining: bool = field(True, "Train a linear head on frozen features.")

    # --- fine-tune / distill ---
    checkpoint: str = field("", "Checkpoint to start from: a model_dir or a checkpoint prefix.")
    fine_tune_after_block: int = field(
        -1,
        "Freeze up to this block (-1 none, 4 = linear eval).",
        valid=(lambda v: -1 <= v <= 4, "must be -1..4"),
    )
    zero_init_logits_layer: bool = field(False, "Zero-initialise the supervised head.")
    teacher: str = field(
        "", "Distill / self_train: teacher model_dir, checkpoint prefix or SavedModel."
    )

    # --- eval / export ---
    export_dir: str = field("", "Export: SavedModel directory (default: <run>/saved_model).")
    eval_wait: bool = field(False, "Eval: keep evaluating new checkpoints until training ends.")
    eval_timeout_secs: int = field(3600, "Eval: stop waiting after this many idle seconds.")

    # --- own images and medical data ---
    split_seed: int = field(
        0, "Seed of the stratified order that split slices (train[:80%], train[:500]) cut."
    )
    intensity_window: str = field(
        "",
        "LOW,HIGH: map 16-bit/float/DICOM pixel values in this window to [0, 1] (clipped); empty "
        "= per-image min-max (DICOM: its own VOI LUT or window first).",
        valid=NUMBER_LIST,
    )
    cache_dir: str = field(
        "", "With --cache_dataset: keep decoded images in .npy files here instead of in memory."
    )
    val_split: str = field(
        "",
        "Split (or slice, e.g. val or train[90%:]) that chooses the binary decision threshold "
        "(Youden's J); never the eval split.",
    )
    positive_class: str = field(
        "", "Binary tasks: the positive class, by name or index (default: class 1)."
    )
    class_weight: str = field(
        "none",
        "Weights of the supervised cross-entropy: balanced = n / (k * n_c) over the labeled "
        "examples (scikit-learn's).",
        ("none", "balanced"),
    )
    balanced_sampling: bool = field(
        False, "Draw the labeled stream class-balanced (each class equally often)."
    )

    @classmethod
    def for_job(cls, given):
        """A validated config from the flags the user gave; unset ones take their method's
        defaults (Method.defaults), or the official ones for a command in the official spelling
        (tfssl/official_flags.py)."""
        given = official_flags.official_values(given)
        probe = cls(**{k: v for k, v in given.items() if k in ("mode", "train_mode", "ssl_method")})
        defaults = official_flags.defaults_for(given) or {}
        if not defaults and probe.method_job in METHODS and probe.ssl_method in SSL_METHODS:
            defaults = lookup(probe.method_job, probe.ssl_method).defaults
        return cls(**{**defaults, **given}).validate()

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    def with_architecture_of(self, trained):
        """This config with the network fields of a trained run's config (a fine-tune inherits its
        pretrained network)."""
        return self.replace(**{name: getattr(trained, name) for name in ARCHITECTURE_FIELDS})

    # --- derived values ---
    @property
    def job(self):
        """The mode, with the official spellings (train + train_mode) resolved."""
        if self.mode in ("train", "train_then_eval"):
            return self.train_mode or "pretrain"
        return self.mode

    @property
    def proj_layers_kept(self):
        """Projection layers under the linear head: --ft_proj_selector, -1 meaning all of them."""
        return self.num_proj_layers if self.ft_proj_selector == -1 else self.ft_proj_selector

    @property
    def method_job(self):
        """The training method whose defaults and checks apply (self_train: its rounds')."""
        return TRAINS_WITH.get(self.job, self.job)

    @property
    def run_dir(self):
        return self.model_dir or os.path.join("runs", f"{self.job}-{dataset_slug(self.dataset)}")

    @property
    def window(self):
        """--intensity_window as (LOW, HIGH), or ()."""
        return tuple(self.float_list("intensity_window"))

    def float_list(self, name):
        try:
            return [float(v) for v in getattr(self, name).split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--{name}={getattr(self, name)!r} must be comma-separated numbers")

    def validate(self):
        """Raises ConfigError naming the first bad value and how to fix it. Each field's own range
        (its `valid` metadata) holds for every job; a training method checks what it needs beyond
        that (Method.validate_config)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices and str(value) not in choices:
                raise ConfigError(
                    f"--{f.name}={value} is not one of {', '.join(c for c in choices if c)}"
                )
            predicate, requirement = f.metadata.get("valid", (None, ""))
            if predicate and not predicate(value):
                raise ConfigError(f"--{f.name}={value} {requirement}")
        if self.image_size and self.image_size < 8:
            raise ConfigError(f"--image_size={self.image_size} is too small; use at least 8 pixels")
        if self.ft_proj_selector < -1 or self.ft_proj_selector > self.num_proj_layers:
            raise ConfigError(
                f"--ft_proj_selector={self.ft_proj_selector} must be 0..num_proj_layers "
                "(or -1, the last)"
            )
        window = self.window
        if window and (len(window) != 2 or window[0] >= window[1]):
            raise ConfigError(
                f"--intensity_window={self.intensity_window} must be LOW,HIGH with LOW < HIGH"
            )
        if self.val_split and self.val_split == self.eval_split:
            raise ConfigError(
                f"--val_split={self.val_split} is the eval split: choose the threshold on "
                "held-out data, e.g. --val_split=val or --val_split=train[90%:]"
            )
        if (self.val_split == LABELED_VAL) != (self.labeled_val_fraction > 0) and self.job != (
            "compare"
        ):
            raise ConfigError(
                "--labeled_val_fraction and --val_split=labeled_val go together: hold out a "
                "share of the labels and name it, e.g. --labeled_val_fraction=0.2 "
                "--val_split=labeled_val"
            )
        if self.best_checkpoint_metric != "none" and not self.val_split and self.job != "compare":
            raise ConfigError(
                f"--best_checkpoint_metric={self.best_checkpoint_metric} needs --val_split "
                "(e.g. --labeled_val_fraction=0.2 --val_split=labeled_val, or --val_split=val)"
            )
        if self.job in ("eval", "export") and not (self.checkpoint or self.model_dir):
            raise ConfigError(
                f"--mode={self.job} needs --checkpoint=<run dir or checkpoint prefix>"
            )
        if self.method_job in METHODS:
            lookup(self.method_job, self.ssl_method).validate_config(self)
        return self


def dataset_slug(dataset):
    """A dataset name as a directory name: folder:/data/x -> folder__data_x."""
    return dataset.replace(":", "_").replace("/", "_")
