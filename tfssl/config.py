"""The run configuration: one frozen dataclass, built by run.py from flags.

Field names follow the official SimCLR TF2 flags where one exists. Defaults are
for the embedded MNIST run (a few minutes on 2 CPU cores); the official
ImageNet defaults are in configs/imagenet_simclr_pretrain.cfg.
"""

import dataclasses
import os

from tfssl.errors import ConfigError
from tfssl.jobs import JOBS
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
)


def _is_number_list(text):
    try:
        [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        return False
    return True


# What a field's value must satisfy, whatever the job: (predicate, what the error says).
POSITIVE = (lambda v: v > 0, "must be positive")
NON_NEGATIVE = (lambda v: v >= 0, "must not be negative")
FRACTION = (lambda v: 0 < v <= 1, "must be in (0, 1]")
PROBABILITY = (lambda v: 0 <= v <= 1, "must be in [0, 1]")
BELOW_ONE = (lambda v: 0 <= v < 1, "must be in [0, 1)")
NUMBER_LIST = (_is_number_list, "must be comma-separated numbers")


def _field(default, help, choices=None, valid=None):
    metadata = {"help": help}
    if choices:
        metadata["choices"] = tuple(choices)
    if valid:
        metadata["valid"] = valid
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Config:
    # --- job ---
    mode: str = _field("pretrain", "Job to run.", MODES)
    train_mode: str = _field(
        "",
        "Official spelling: with --mode=train, pretrain or finetune.",
        ("", "pretrain", "finetune"),
    )
    ssl_method: str = _field(
        "simclr", "Pretraining objective for --mode=pretrain.", tuple(SSL_METHODS)
    )
    model_dir: str = _field(
        "", "Run directory (checkpoints, summaries, results). Default: runs/<mode>-<dataset>."
    )
    strategy: str = _field(
        "auto",
        "tf.distribute strategy; auto = mirrored over GPUs, one device for one "
        "GPU, the default strategy on CPU.",
        ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu"),
    )
    tpu_name: str = _field("", "TPU name or grpc address for --strategy=tpu.")
    precision: str = _field(
        "float32", "Compute precision.", ("float32", "mixed_bfloat16", "mixed_float16")
    )
    jit_compile: bool = _field(False, "XLA-compile the train step (helps on GPU, not on CPU).")
    steps_per_loop: int = _field(50, "Train steps per tf.function call.", valid=POSITIVE)
    matmul_conv_grads: bool = _field(
        True,
        "Weight gradients of convolutions with outputs of 7x7 or less as matrix "
        "products (several times faster than oneDNN's on CPU). Strided 1x1 ones "
        "take them always: oneDNN's AVX2 kernel is wrong or crashes there.",
    )
    seed: int = _field(0, "Seed for weights, data order and augmentation.")
    deterministic: bool = _field(False, "Enable TF op determinism (bit-identical reruns, slower).")
    log_every_secs: float = _field(10.0, "Seconds between progress lines.")

    # --- data ---
    dataset: str = _field("mnist", "tfds name, or folder:/path/to/root for your own images.")
    data_dir: str = _field("", "tfds data_dir (default: tfds' own, ~/tensorflow_datasets).")
    train_split: str = _field("train", "Split to train on.")
    eval_split: str = _field("test", "Split to evaluate on.")
    cache_dataset: bool = _field(
        True,
        "Decode and resize each split's images once and keep them (in memory, or in --cache_dir); "
        "later epochs read no image file.",
    )
    image_size: int = _field(0, "Input image size; 0 = the dataset's own size.", valid=NON_NEGATIVE)
    skip_corrupt_images: bool = _field(False, "Skip unreadable images in a folder dataset (warn).")

    # --- label subsets ---
    label_fraction: float = _field(
        1.0,
        "Fraction of train labels kept (class-balanced).",
        valid=(FRACTION[0], "must be in (0, 1], e.g. 0.01 or 0.1"),
    )
    num_labels: int = _field(
        0, "Number of labels kept (class-balanced); overrides label_fraction.", valid=NON_NEGATIVE
    )
    label_seed: int = _field(0, "Seed choosing the labeled subset.")
    label_subset_file: str = _field("", "Reuse the labeled subset saved in this JSON file.")

    # --- optimisation ---
    train_batch_size: int = _field(256, "Global batch size.", valid=POSITIVE)
    train_epochs: float = _field(2, "Epochs to train for.", valid=NON_NEGATIVE)
    train_steps: int = _field(0, "Steps to train for; overrides train_epochs.", valid=NON_NEGATIVE)
    eval_batch_size: int = _field(256, "Batch size for evaluation.", valid=POSITIVE)
    eval_steps: int = _field(0, "Eval steps; 0 = the whole eval split.", valid=NON_NEGATIVE)
    learning_rate: float = _field(
        1.0,
        "Learning rate per 256 examples (see learning_rate_scaling; official: 0.3).",
        valid=POSITIVE,
    )
    learning_rate_scaling: str = _field(
        "linear",
        "LR scaling with batch size (constant: no scaling).",
        ("linear", "sqrt", "constant"),
    )
    warmup_epochs: float = _field(
        0.2, "Epochs of linear warmup before cosine decay.", valid=NON_NEGATIVE
    )
    weight_decay: float = _field(1e-6, "Weight decay.", valid=NON_NEGATIVE)
    optimizer: str = _field("lars", "Optimizer.", ("lars", "momentum", "adam"))
    momentum: float = _field(0.9, "Momentum for lars and momentum optimizers.")
    lr_schedule: str = _field(
        "cosine",
        "Learning-rate schedule: linear warmup + cosine decay, or constant.",
        ("cosine", "constant"),
    )
    batch_norm_decay: float = _field(0.9, "Batch norm moving-average decay.", valid=BELOW_ONE)
    bn_recalibration_batches: int = _field(
        0,
        "After training, re-estimate batch-norm statistics on this many "
        "eval_batch_size batches of clean train images (0 = keep the "
        "training averages, e.g. of Mean Teacher's noisy inputs).",
        valid=NON_NEGATIVE,
    )
    global_bn: bool = _field(True, "Synchronise batch norm statistics across replicas.")
    checkpoint_epochs: float = _field(1, "Epochs between checkpoints and summaries.")
    checkpoint_steps: int = _field(
        0, "Steps between checkpoints; overrides checkpoint_epochs.", valid=NON_NEGATIVE
    )
    keep_checkpoint_max: int = _field(5, "Checkpoints kept.", valid=POSITIVE)
    skip_nonfinite_steps: bool = _field(
        False, "Skip steps with a NaN/Inf loss instead of stopping."
    )

    # --- network ---
    architecture: str = _field(
        "auto", "Network; auto = the method's usual one.", ("auto", "resnet", "convlarge", "mlp")
    )
    resnet_depth: int = _field(18, "ResNet depth.", ("18", "34", "50", "101", "152", "200"))
    width_multiplier: float = _field(
        0.25, "ResNet width multiplier (1 = 64 channels in the stem).", valid=POSITIVE
    )
    sk_ratio: float = _field(
        0.0, "Selective-kernel ratio; > 0 enables SK (SimCLRv2 uses 0.0625).", valid=NON_NEGATIVE
    )
    se_ratio: float = _field(0.0, "Squeeze-excitation ratio; > 0 enables SE.", valid=NON_NEGATIVE)

    # --- SimCLR ---
    temperature: float = _field(0.2, "NT-Xent temperature.", valid=POSITIVE)
    hidden_norm: bool = _field(True, "L2-normalise projections before NT-Xent.")
    proj_head_mode: str = _field("nonlinear", "Projection head.", ("none", "linear", "nonlinear"))
    proj_out_dim: int = _field(128, "Projection output size.", valid=POSITIVE)
    num_proj_layers: int = _field(3, "Layers in the nonlinear projection head.", valid=POSITIVE)
    ft_proj_selector: int = _field(0, "Projection layers kept for fine-tuning (0 = none).")
    color_jitter_strength: float = _field(0.5, "Colour jitter strength s.")
    crop_min_area: float = _field(
        0.3, "Smallest crop area fraction in random resized crops (official: 0.08).", valid=FRACTION
    )
    use_flip: bool = _field(
        False, "Random horizontal flips in training augmentation (official: on; off for digits)."
    )
    use_blur: bool = _field(True, "Gaussian blur (p=0.5) in pretraining augmentation.")
    lineareval_while_pretraining: bool = _field(True, "Train a linear head on frozen features.")

    # --- fine-tune / distill ---
    checkpoint: str = _field("", "Checkpoint to start from: a model_dir or a checkpoint prefix.")
    fine_tune_after_block: int = _field(
        -1,
        "Freeze up to this block (-1 none, 4 = linear eval).",
        valid=(lambda v: -1 <= v <= 4, "must be -1..4"),
    )
    zero_init_logits_layer: bool = _field(False, "Zero-initialise the supervised head.")
    teacher: str = _field("", "Distill: teacher model_dir, checkpoint prefix or SavedModel.")
    student_resnet_depth: int = _field(0, "Distill: student depth (0 = teacher's).")
    student_width_multiplier: float = _field(0.0, "Distill: student width (0 = teacher's).")
    distill_temperature: float = _field(1.0, "Distill: softmax temperature T.", valid=POSITIVE)
    distill_label_weight: float = _field(0.0, "Distill: weight of the labeled cross-entropy.")

    # --- eval / export ---
    export_dir: str = _field("", "Export: SavedModel directory (default: <run>/saved_model).")
    eval_wait: bool = _field(False, "Eval: keep evaluating new checkpoints until training ends.")
    eval_timeout_secs: int = _field(3600, "Eval: stop waiting after this many idle seconds.")

    # --- Mean Teacher ---
    ema_decay: float = _field(0.999, "Teacher EMA decay after ramp-up.", valid=PROBABILITY)
    ema_decay_rampup: float = _field(0.99, "Teacher EMA decay during ramp-up.", valid=PROBABILITY)
    consistency: str = _field("mse", "Consistency cost between softmaxes.", ("mse", "kl"))
    consistency_weight: float = _field(
        100.0,
        "Maximum consistency weight (paper: 100 with mse; about 10 "
        "with kl). 0 = the supervised baseline.",
        valid=NON_NEGATIVE,
    )
    consistency_rampup_steps: int = _field(5000, "Sigmoid ramp-up length in steps.")
    logit_distance_cost: float = _field(-1.0, "Cost between the two student heads; < 0 = one head.")
    input_noise_std: float = _field(
        0.15, "Gaussian input noise for student and teacher.", valid=NON_NEGATIVE
    )
    unlabeled_batch_size: int = _field(
        0, "Unlabeled examples per step (0 = train_batch_size).", valid=NON_NEGATIVE
    )
    unlabeled_includes_labeled: bool = _field(
        False, "Draw unlabeled batches from the whole train split."
    )
    convlarge_dropout: float = _field(
        0.5, "Mean Teacher ConvLarge: dropout rate after each max-pool.", valid=BELOW_ONE
    )
    random_translate: int = _field(
        2, "Mean Teacher / Ladder: random translation in pixels (0 = none)."
    )
    random_rotate: float = _field(
        0.0,
        "Mean Teacher: random rotation, uniform in +-this many degrees (0 = none).",
        valid=(lambda v: 0 <= v <= 180, "must be in [0, 180] degrees"),
    )
    elastic_alpha: float = _field(
        0.0,
        "Mean Teacher: elastic distortion scale, pixels per unit of the smoothed "
        "uniform field (Simard et al. 2003; 0 = none).",
        valid=NON_NEGATIVE,
    )
    elastic_sigma: float = _field(
        4.0,
        "Mean Teacher: smoothness (Gaussian std, pixels) of the elastic distortion.",
        valid=POSITIVE,
    )
    translate_fill: str = _field(
        "reflect",
        "Border fill of --random_translate: reflect (the reference's) "
        "or zero (no mirrored strokes; worse on MNIST here).",
        ("reflect", "zero"),
    )

    # --- Ladder ---
    ladder_noise_std: float = _field(
        0.3, "Ladder: corruption noise at every layer.", valid=NON_NEGATIVE
    )
    denoising_costs: str = _field(
        "1000,10,0.1,0.1,0.1,0.1,0.1",
        "Ladder: cost per layer, input first (all 0: "
        "the supervised baseline; gamma: the last value, default 1).",
        valid=NUMBER_LIST,
    )
    ladder_hidden_sizes: str = _field(
        "1000,500,250,250,250", "Ladder MLP hidden layer sizes.", valid=NUMBER_LIST
    )
    ladder_model: str = _field(
        "full",
        "Ladder: full MLP ladder, or the conv Gamma-model (top layer only).",
        ("full", "gamma"),
    )

    # --- SS-VAE ---
    ssvae_model: str = _field("m2", "SS-VAE model.", ("m1", "m2", "m1m2"))
    ssvae_latent_dim: int = _field(50, "SS-VAE latent size.", valid=POSITIVE)
    ssvae_hidden_sizes: str = _field(
        "",
        "SS-VAE hidden layer sizes of every MLP; empty = m1: 500,500; m2 and "
        "M1+M2's M2: 500 (the authors' 100-label M1+M2 used 300).",
        valid=NUMBER_LIST,
    )
    ssvae_activation: str = _field(
        "softplus", "SS-VAE hidden activation (a Keras activation name)."
    )
    ssvae_likelihood: str = _field(
        "bernoulli",
        "p(x|z) on pixels (M1+M2's M2 is always Gaussian on M1's codes).",
        ("bernoulli", "gaussian"),
    )
    ssvae_alpha: float = _field(
        0.1,
        "SS-VAE classification weight per example: the paper's alpha = "
        "ssvae_alpha * N (N = train examples; paper: 0.1).",
    )
    ssvae_kl_warmup_epochs: float = _field(
        0.0,
        "M1: raise the KL weight linearly from 0 to 1 over these epochs "
        "(Sonderby et al. 2016; 0 = the paper's plain bound).",
        valid=NON_NEGATIVE,
    )
    ssvae_labels_only: bool = _field(
        False, "SS-VAE: train only q(y|x) on the labels (the supervised baseline)."
    )
    m1_checkpoint: str = _field("", "M1+M2: the trained M1 run.")
    m1_latent: str = _field(
        "sample", "M1+M2: feed M1's z samples or means to M2.", ("sample", "mean")
    )

    # --- own images and medical data ---
    split_seed: int = _field(
        0, "Seed of the stratified order that split slices (train[:80%], train[:500]) cut."
    )
    intensity_window: str = _field(
        "",
        "LOW,HIGH: map 16-bit/float/DICOM pixel values in this window to [0, 1] (clipped); empty "
        "= per-image min-max (DICOM: its own VOI LUT or window first).",
        valid=NUMBER_LIST,
    )
    cache_dir: str = _field(
        "", "With --cache_dataset: keep decoded images in .npy files here instead of in memory."
    )
    val_split: str = _field(
        "",
        "Split (or slice, e.g. val or train[90%:]) that chooses the binary decision threshold "
        "(Youden's J); never the eval split.",
    )
    positive_class: str = _field(
        "", "Binary tasks: the positive class, by name or index (default: class 1)."
    )
    class_weight: str = _field(
        "none",
        "Weights of the supervised cross-entropy: balanced = n / (k * n_c) over the labeled "
        "examples (scikit-learn's).",
        ("none", "balanced"),
    )
    balanced_sampling: bool = _field(
        False, "Draw the labeled stream class-balanced (each class equally often)."
    )

    # --- MICLe ---
    positive_pairs: str = _field(
        "augment",
        "Pretraining positives: augment = two augmentations of one image (SimCLR); same_group = "
        "two images of one group (e.g. a patient: a csv group column, or --folder_groups), each "
        "augmented, with at most one anchor per group in a batch (MICLe, Azizi et al. 2021).",
        ("augment", "same_group"),
    )
    folder_groups: bool = _field(
        False,
        "Folder datasets have a group level (e.g. the patient) under each class: "
        "root/[<split>/]<class>/<group>/<image>.",
    )

    # --- compare ---
    label_fractions: str = _field("0.01,0.1,1.0", "Compare: label fractions.", valid=NUMBER_LIST)
    methods: str = _field(
        "supervised,simclr,simclr_distill",
        "Compare: methods to run (simclr brings its linear probe simclr_linear; "
        "simclr_distill its teacher simclr).",
    )
    budget: str = _field(
        "small",
        "Compare: steps per run from epochs over its own training data, with a floor and "
        "a ceiling (tfssl/compare.py).",
        ("tiny", "small", "full"),
    )
    seeds: int = _field(
        1,
        "Compare: runs per method and fraction; run k uses --seed+k and --label_seed+k "
        "(the pretraining is shared).",
        valid=POSITIVE,
    )
    recipe_dir: str = _field(
        "", "Compare: directory of recipe flagfiles (default: the checkout's configs/compare)."
    )

    @classmethod
    def for_job(cls, given):
        """A validated config from the flags the user gave; unset ones take their method's
        defaults (Method.defaults)."""
        probe = cls(**{k: v for k, v in given.items() if k in ("mode", "train_mode", "ssl_method")})
        defaults = {}
        if probe.job in METHODS and probe.ssl_method in SSL_METHODS:
            defaults = lookup(probe.job, probe.ssl_method).defaults
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
        if self.ft_proj_selector < 0 or self.ft_proj_selector > self.num_proj_layers:
            raise ConfigError(
                f"--ft_proj_selector={self.ft_proj_selector} must be 0..num_proj_layers"
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
        for fraction in self.float_list("label_fractions"):
            if not 0 < fraction <= 1:
                raise ConfigError(f"--label_fractions has {fraction}: each must be in (0, 1]")
        if self.job in ("eval", "export") and not (self.checkpoint or self.model_dir):
            raise ConfigError(
                f"--mode={self.job} needs --checkpoint=<run dir or checkpoint prefix>"
            )
        if self.job in METHODS:
            lookup(self.job, self.ssl_method).validate_config(self)
        return self


def dataset_slug(dataset):
    """A dataset name as a directory name: folder:/data/x -> folder__data_x."""
    return dataset.replace(":", "_").replace("/", "_")
