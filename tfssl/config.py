"""The run configuration: one frozen dataclass, built by run.py from flags.

Field names follow the official SimCLR TF2 flags where one exists. Defaults are
for the embedded MNIST run (a few minutes on 2 CPU cores); the official
ImageNet defaults are in configs/imagenet_simclr_pretrain.cfg.
"""

import dataclasses
import os
import re

from tfssl import official_flags
from tfssl.data.subsets import LABELED_VAL
from tfssl.errors import ConfigError
from tfssl.jobs import JOBS, TRAINS_WITH
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


def _is_regex(text):
    try:
        re.compile(text)
    except re.error:
        return False
    return True


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
        "auto",
        "Compute precision. auto, resolved when a run starts (and kept when it resumes): "
        "mixed_float16 on GPUs of compute capability >= 7.0 (tensor cores), mixed_bfloat16 on "
        "TPUs and on CPUs with AMX or AVX512-BF16 (native bfloat16), float32 otherwise (bfloat16 "
        "is emulated, several times slower, on other CPUs).",
        ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    )
    jit_compile: bool = _field(False, "XLA-compile the train step (helps on GPU, not on CPU).")
    steps_per_loop: int = _field(50, "Train steps per tf.function call.", valid=POSITIVE)
    matmul_conv_grads: str = _field(
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
        "Learning-rate schedule: linear warmup + cosine decay, constant, or FixMatch's "
        "lr0 cos(7 pi k / 16 K).",
        ("cosine", "constant", "fixmatch_cosine"),
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
        "auto",
        "Network; auto = the method's usual one.",
        ("auto", "resnet", "convlarge", "mlp", "vit"),
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
    ft_proj_selector: int = _field(
        0, "Projection layers kept for fine-tuning (0 = none, -1 = all)."
    )
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
    teacher: str = _field(
        "", "Distill / self_train: teacher model_dir, checkpoint prefix or SavedModel."
    )
    student_resnet_depth: int = _field(0, "Distill: student depth (0 = teacher's).")
    student_width_multiplier: float = _field(0.0, "Distill: student width (0 = teacher's).")
    distill_temperature: float = _field(1.0, "Distill: softmax temperature T.", valid=POSITIVE)
    distill_label_weight: float = _field(0.0, "Distill: weight of the labeled cross-entropy.")

    # --- eval / export ---
    export_dir: str = _field("", "Export: SavedModel directory (default: <run>/saved_model).")
    eval_wait: bool = _field(False, "Eval: keep evaluating new checkpoints until training ends.")
    eval_timeout_secs: int = _field(3600, "Eval: stop waiting after this many idle seconds.")

    # --- Mean Teacher ---
    ema_decay: float = _field(
        0.999, "EMA decay (Mean Teacher: after ramp-up; FixMatch).", valid=PROBABILITY
    )
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
        2,
        "Mean Teacher / Ladder / FixMatch: random translation in pixels (0 = none; "
        "-1 = 12.5% of the image size, FixMatch's weak view).",
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

    # --- official flags (google-research/simclr tf2/run.py; tfssl/official_flags.py) ---
    use_tpu: bool = _field(False, "Run on a TPU: --strategy=tpu (official default: True).")
    master: str = _field("", "TPU master address; names the TPU when --tpu_name is empty.")
    tpu_zone: str = _field("", "GCE zone of the Cloud TPU (--strategy=tpu).")
    gcp_project: str = _field("", "Cloud project of the TPU (--strategy=tpu).")
    eval_name: str = _field("", "Official eval name; no effect here (logged).")
    keep_hub_module_max: int = _field(1, "Official SavedModels kept; no effect here (logged).")
    variable_schema: str = _field(
        "(?!global_step|(?:.*/|^)Momentum|head_supervised)",
        "Regex (re.match) over the --checkpoint variables to restore (fine-tune, continued "
        "pretraining), named base_model/..., head_contrastive/..., head_supervised/...; the "
        "default restores all but the linear head.",
        valid=(_is_regex, "is not a regular expression"),
    )
    train_summary_steps: int = _field(
        -1,
        "Steps between training summaries; 0 = none, -1 = after every --steps_per_loop steps "
        "(official default: 100).",
        valid=(lambda v: v >= -1, "must be -1, 0 or positive"),
    )

    # --- BYOL, SimSiam, MoCo v2 and the k-NN monitor ---
    target_decay: float = _field(
        0.996,
        "BYOL: base decay tau_base of the target network's EMA, raised to 1 on a cosine "
        "schedule over training.",
        valid=PROBABILITY,
    )
    predictor_hidden_dim: int = _field(
        0,
        "BYOL/SimSiam: hidden width of the predictor MLP (0 = 4 x proj_out_dim for BYOL, "
        "proj_out_dim / 4 for SimSiam's bottleneck).",
        valid=NON_NEGATIVE,
    )
    predictor_fixed_lr: bool = _field(
        False,
        "SimSiam: keep the predictor at the peak learning rate while the rest decays "
        "(SimSiam's --fix-pred-lr; on by default for simsiam; needs --optimizer=momentum).",
    )
    moco_momentum: float = _field(0.999, "MoCo: EMA decay of the key encoder.", valid=PROBABILITY)
    queue_size: int = _field(
        0,
        "MoCo: keys in the queue of negatives (0 = the largest power of 2 up to a tenth of the "
        "train images, at most 65536, at least one batch).",
        valid=NON_NEGATIVE,
    )
    shuffle_bn: bool = _field(
        False,
        "MoCo: shuffled BN: keys are computed on the global batch in a random order, in "
        "--bn_splits groups per replica with their own batch statistics, then put back in "
        "order (on by default for moco; --global_bn is the alternative).",
    )
    bn_splits: int = _field(
        0,
        "MoCo with --shuffle_bn: batch-norm groups per replica, queries and keys alike "
        "(0 = per-replica batch / 32, between 1 and 8).",
        valid=NON_NEGATIVE,
    )
    knn: bool = _field(False, "Eval: also score the weighted k-NN classifier on frozen features.")
    knn_k: int = _field(
        200, "k-NN monitor: neighbours (0 = no k-NN monitor while pretraining).", valid=NON_NEGATIVE
    )
    knn_temperature: float = _field(
        0.1, "k-NN monitor: neighbours vote with weight exp(cosine / T).", valid=POSITIVE
    )
    knn_every_epochs: float = _field(
        1.0,
        "k-NN monitor while pretraining: every this many epochs and at the end (0 = at the end "
        "only).",
        valid=NON_NEGATIVE,
    )
    knn_bank_size: int = _field(
        0,
        "k-NN monitor: train images in the feature bank, a fixed random subset (0 = the whole "
        "train split; cap it on large datasets: each pass encodes the bank once).",
        valid=NON_NEGATIVE,
    )

    # --- FixMatch and self-training ---
    unlabeled_ratio: int = _field(
        7, "FixMatch: unlabeled images per labeled image in a step (mu).", valid=POSITIVE
    )
    confidence_threshold: float = _field(
        0.95,
        "FixMatch: keep a pseudo-label when its probability is at least this (tau).",
        valid=PROBABILITY,
    )
    unlabeled_loss_weight: float = _field(
        1.0,
        "FixMatch: weight of the pseudo-label loss (lambda; 0 = the supervised baseline).",
        valid=NON_NEGATIVE,
    )
    distribution_alignment: bool = _field(
        False, "FixMatch: align pseudo-label distributions to the labeled one (ReMixMatch)."
    )
    self_adaptive_threshold: bool = _field(
        False,
        "FixMatch: FreeMatch's self-adaptive per-class thresholds in place of "
        "--confidence_threshold (Wang et al. 2023).",
    )
    randaugment_num_ops: int = _field(
        2, "Strong augmentation: RandAugment operations per image.", valid=NON_NEGATIVE
    )
    cutout_fraction: float = _field(
        0.5,
        "Strong augmentation: Cutout square side over image side (0 = none).",
        valid=PROBABILITY,
    )
    curriculum_step: float = _field(
        20.0,
        "Self-train: percent of the unlabeled pool added per round (20, 40, ..., 100).",
        valid=(lambda v: 0 < v <= 100, "must be in (0, 100]"),
    )
    reinit: bool = _field(True, "Self-train: a fresh student each round (false: continue).")
    balance_pseudo_labels: bool = _field(
        True,
        "Self-train: take the most confident percent within each predicted class (false: of "
        "the whole pool, as Curriculum Labeling does).",
    )
    pseudo_labels: str = _field(
        "", "Self-train round: .npz of pseudo-labeled train images (indices, labels)."
    )
    noisy_student: bool = _field(
        True, "Self-train: noise the student (strong augmentation, --student_dropout)."
    )
    student_dropout: float = _field(
        0.5, "Self-train: dropout before the student's head with --noisy_student.", valid=BELOW_ONE
    )

    # --- multiple-instance learning ---
    mil_pooling: str = _field(
        "attention",
        "MIL: how instance embeddings become a bag embedding: max, mean, or (gated) attention "
        "(Ilse et al. 2018).",
        ("max", "mean", "attention", "gated_attention"),
    )
    mil_attention_dim: int = _field(
        128, "MIL: hidden size D of the attention network (paper: 128).", valid=POSITIVE
    )
    mil_freeze_encoder: bool = _field(
        False, "MIL: keep the --checkpoint encoder frozen (else it is fine-tuned)."
    )
    mil_target: int = _field(9, "MNIST-bags: a bag is positive when it holds this digit.")
    mil_bag_mean: float = _field(10.0, "MNIST-bags: mean bag size.", valid=POSITIVE)
    mil_bag_std: float = _field(2.0, "MNIST-bags: standard deviation of the bag size.")
    mil_train_bags: int = _field(
        200, "MNIST-bags: training bags (the validation bags among them).", valid=POSITIVE
    )
    mil_test_bags: int = _field(1000, "MNIST-bags: test bags (fixed seed).", valid=POSITIVE)
    mil_positive_fraction: float = _field(
        0.5,
        "MNIST-bags: share of positive bags (0.5: balanced, as the authors' loader; 0: bags "
        "drawn at random, positive when they happen to hold the target).",
        valid=BELOW_ONE,
    )
    mil_val_fraction: float = _field(
        0.2,
        "MIL: share of the training bags held out (per class) for early stopping, unless the "
        "data has a validation split.",
        valid=BELOW_ONE,
    )
    mil_patience: int = _field(
        25,
        "MIL: stop after this many checkpoint intervals (epochs) without a better validation "
        "error (ties: loss), and keep the best weights; 0 = train all epochs, keep the last.",
        valid=NON_NEGATIVE,
    )

    # --- validation: choices on held-out labels ---
    labeled_val_fraction: float = _field(
        0.0,
        "Share of the labeled subset held out as a stratified validation split (at least one "
        "image per class, chosen by --label_seed, saved in label_subset.json); the run fits on "
        "the rest. Name it with --val_split=labeled_val. --mode=compare: 0 means 0.2.",
        valid=BELOW_ONE,
    )
    best_checkpoint_metric: str = _field(
        "none",
        "Evaluate --val_split before the first step and at every checkpoint, keep the best "
        "checkpoint by this metric (ties: the lower val loss) as the run's model, and evaluate "
        "the eval split once, on it. --mode=compare: none means balanced_accuracy.",
        ("none", "balanced_accuracy", "top_1_accuracy", "auroc", "loss"),
    )
    min_val_examples: int = _field(
        100,
        "A validation split with fewer images cannot choose (one image is over a point): the run "
        "keeps its last checkpoint, still logging the val scores, and a --mode=compare grid "
        "keeps its recipe's values.",
        valid=NON_NEGATIVE,
    )
    finetune_learning_rates: str = _field(
        "0.02,0.1",
        "Compare: fine-tuning learning rates (per 256) tried for every fine-tuned run; the "
        "validation split chooses (empty: the recipe's).",
        valid=NUMBER_LIST,
    )
    finetune_crop_min_areas: str = _field(
        "0.3,0.8",
        "Compare: fine-tuning crop strengths (--crop_min_area) tried with each learning rate; "
        "the validation split chooses (empty: the recipe's).",
        valid=NUMBER_LIST,
    )

    # --- pretext tasks (rotation, jigsaw, context_encoder, colorization, mae) ---
    jigsaw_permutations: int = _field(
        100,
        "Jigsaw: the P permutations classified, chosen for large Hamming distance (saved in "
        "model_dir).",
        valid=(lambda v: 2 <= v <= 362880, "must be 2..9! (362880)"),
    )
    mask_mode: str = _field(
        "center",
        "Context encoder: mask the central square (a quarter of the image) or random blocks "
        "covering a quarter of it.",
        ("center", "random"),
    )
    adversarial_weight: float = _field(
        0.0,
        "Context encoder: weight of the adversarial loss beside the L2 reconstruction "
        "(paper: 0.001; 0 = no discriminator).",
        valid=NON_NEGATIVE,
    )
    colorization_loss: str = _field(
        "classification",
        "Colorization: cross-entropy over quantised ab bins with class rebalancing (Zhang et "
        "al.), or L2 on ab.",
        ("classification", "l2"),
    )
    mask_ratio: float = _field(0.75, "MAE: fraction of the patches removed.", valid=BELOW_ONE)
    norm_pix_loss: bool = _field(True, "MAE: normalise each target patch (mean 0, variance 1).")
    mae_decoder_depth: int = _field(2, "MAE: transformer blocks in the decoder.", valid=POSITIVE)
    mae_decoder_width: int = _field(64, "MAE: width of the decoder.", valid=POSITIVE)
    vit_patch_size: int = _field(4, "ViT: patch size in pixels.", valid=POSITIVE)
    vit_depth: int = _field(6, "ViT: transformer blocks.", valid=POSITIVE)
    vit_width: int = _field(
        128, "ViT: token width (a multiple of 4 and of the heads).", valid=POSITIVE
    )
    vit_num_heads: int = _field(4, "ViT: attention heads.", valid=POSITIVE)

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
        "a ceiling (tfssl/compare_methods.py).",
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
        if any(v <= 0 for v in self.float_list("finetune_learning_rates")):
            raise ConfigError("--finetune_learning_rates must be positive numbers")
        if any(not 0 < v <= 1 for v in self.float_list("finetune_crop_min_areas")):
            raise ConfigError("--finetune_crop_min_areas must be numbers in (0, 1]")
        for fraction in self.float_list("label_fractions"):
            if not 0 < fraction <= 1:
                raise ConfigError(f"--label_fractions has {fraction}: each must be in (0, 1]")
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
