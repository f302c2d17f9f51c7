"""The flags of one method family each, mixed into tfssl.config.Config.

Each group is a frozen dataclass of fields; Config inherits them all, so a run still has one
flat, frozen configuration.
"""

import dataclasses

from tfssl.fields import (
    BELOW_ONE,
    NON_NEGATIVE,
    NUMBER_LIST,
    POSITIVE,
    PROBABILITY,
    field,
    is_regex,
)


@dataclasses.dataclass(frozen=True)
class MeanTeacherFields:
    """Mean Teacher (and the input noise and ConvLarge it shares)."""

    ema_decay: float = field(
        0.999, "EMA decay (Mean Teacher: after ramp-up; FixMatch).", valid=PROBABILITY
    )
    ema_decay_rampup: float = field(0.99, "Teacher EMA decay during ramp-up.", valid=PROBABILITY)
    consistency: str = field("mse", "Consistency cost between softmaxes.", ("mse", "kl"))
    consistency_weight: float = field(
        100.0,
        "Maximum consistency weight (paper: 100 with mse; about 10 "
        "with kl). 0 = the supervised baseline.",
        valid=NON_NEGATIVE,
    )
    consistency_rampup_steps: int = field(5000, "Sigmoid ramp-up length in steps.")
    logit_distance_cost: float = field(-1.0, "Cost between the two student heads; < 0 = one head.")
    input_noise_std: float = field(
        0.15, "Gaussian input noise for student and teacher.", valid=NON_NEGATIVE
    )
    unlabeled_batch_size: int = field(
        0, "Unlabeled examples per step (0 = train_batch_size).", valid=NON_NEGATIVE
    )
    unlabeled_includes_labeled: bool = field(
        False, "Draw unlabeled batches from the whole train split."
    )
    convlarge_dropout: float = field(
        0.5, "Mean Teacher ConvLarge: dropout rate after each max-pool.", valid=BELOW_ONE
    )
    random_translate: int = field(
        2,
        "Mean Teacher / Ladder / FixMatch: random translation in pixels (0 = none; "
        "-1 = 12.5% of the image size, FixMatch's weak view).",
    )
    random_rotate: float = field(
        0.0,
        "Mean Teacher: random rotation, uniform in +-this many degrees (0 = none).",
        valid=(lambda v: 0 <= v <= 180, "must be in [0, 180] degrees"),
    )
    elastic_alpha: float = field(
        0.0,
        "Mean Teacher: elastic distortion scale, pixels per unit of the smoothed "
        "uniform field (Simard et al. 2003; 0 = none).",
        valid=NON_NEGATIVE,
    )
    elastic_sigma: float = field(
        4.0,
        "Mean Teacher: smoothness (Gaussian std, pixels) of the elastic distortion.",
        valid=POSITIVE,
    )
    translate_fill: str = field(
        "reflect",
        "Border fill of --random_translate: reflect (the reference's) "
        "or zero (no mirrored strokes; worse on MNIST here).",
        ("reflect", "zero"),
    )


@dataclasses.dataclass(frozen=True)
class LadderFields:
    """Ladder Networks."""

    ladder_noise_std: float = field(
        0.3, "Ladder: corruption noise at every layer.", valid=NON_NEGATIVE
    )
    denoising_costs: str = field(
        "1000,10,0.1,0.1,0.1,0.1,0.1",
        "Ladder: cost per layer, input first (all 0: "
        "the supervised baseline; gamma: the last value, default 1).",
        valid=NUMBER_LIST,
    )
    ladder_hidden_sizes: str = field(
        "1000,500,250,250,250", "Ladder MLP hidden layer sizes.", valid=NUMBER_LIST
    )
    ladder_model: str = field(
        "full",
        "Ladder: full MLP ladder, or the conv Gamma-model (top layer only).",
        ("full", "gamma"),
    )


@dataclasses.dataclass(frozen=True)
class SsvaeFields:
    """The semi-supervised VAE (M1, M2, M1+M2)."""

    ssvae_model: str = field("m2", "SS-VAE model.", ("m1", "m2", "m1m2"))
    ssvae_latent_dim: int = field(50, "SS-VAE latent size.", valid=POSITIVE)
    ssvae_hidden_sizes: str = field(
        "",
        "SS-VAE hidden layer sizes of every MLP; empty = m1: 500,500; m2 and "
        "M1+M2's M2: 500 (the authors' 100-label M1+M2 used 300).",
        valid=NUMBER_LIST,
    )
    ssvae_activation: str = field("softplus", "SS-VAE hidden activation (a Keras activation name).")
    ssvae_likelihood: str = field(
        "bernoulli",
        "p(x|z) on pixels (M1+M2's M2 is always Gaussian on M1's codes).",
        ("bernoulli", "gaussian"),
    )
    ssvae_alpha: float = field(
        0.1,
        "SS-VAE classification weight per example: the paper's alpha = "
        "ssvae_alpha * N (N = train examples; paper: 0.1).",
    )
    ssvae_kl_warmup_epochs: float = field(
        0.0,
        "M1: raise the KL weight linearly from 0 to 1 over these epochs "
        "(Sonderby et al. 2016; 0 = the paper's plain bound).",
        valid=NON_NEGATIVE,
    )
    ssvae_labels_only: bool = field(
        False, "SS-VAE: train only q(y|x) on the labels (the supervised baseline)."
    )
    m1_checkpoint: str = field("", "M1+M2: the trained M1 run.")
    m1_latent: str = field(
        "sample", "M1+M2: feed M1's z samples or means to M2.", ("sample", "mean")
    )


@dataclasses.dataclass(frozen=True)
class OfficialFields:
    """Official flags (google-research/simclr tf2/run.py; tfssl/official_flags.py)."""

    use_tpu: bool = field(False, "Run on a TPU: --strategy=tpu (official default: True).")
    master: str = field("", "TPU master address; names the TPU when --tpu_name is empty.")
    tpu_zone: str = field("", "GCE zone of the Cloud TPU (--strategy=tpu).")
    gcp_project: str = field("", "Cloud project of the TPU (--strategy=tpu).")
    eval_name: str = field("", "Official eval name; no effect here (logged).")
    keep_hub_module_max: int = field(1, "Official SavedModels kept; no effect here (logged).")
    variable_schema: str = field(
        "(?!global_step|(?:.*/|^)Momentum|head_supervised)",
        "Regex (re.match) over the --checkpoint variables to restore (fine-tune, continued "
        "pretraining), named base_model/..., head_contrastive/..., head_supervised/...; the "
        "default restores all but the linear head.",
        valid=(is_regex, "is not a regular expression"),
    )
    train_summary_steps: int = field(
        -1,
        "Steps between training summaries; 0 = none, -1 = after every --steps_per_loop steps "
        "(official default: 100).",
        valid=(lambda v: v >= -1, "must be -1, 0 or positive"),
    )


@dataclasses.dataclass(frozen=True)
class ContrastiveFields:
    """BYOL, SimSiam, MoCo v2 and the k-NN monitor."""

    target_decay: float = field(
        0.996,
        "BYOL: base decay tau_base of the target network's EMA, raised to 1 on a cosine "
        "schedule over training.",
        valid=PROBABILITY,
    )
    predictor_hidden_dim: int = field(
        0,
        "BYOL/SimSiam: hidden width of the predictor MLP (0 = 4 x proj_out_dim for BYOL, "
        "proj_out_dim / 4 for SimSiam's bottleneck).",
        valid=NON_NEGATIVE,
    )
    predictor_fixed_lr: bool = field(
        False,
        "SimSiam: keep the predictor at the peak learning rate while the rest decays "
        "(SimSiam's --fix-pred-lr; on by default for simsiam; needs --optimizer=momentum).",
    )
    moco_momentum: float = field(0.999, "MoCo: EMA decay of the key encoder.", valid=PROBABILITY)
    queue_size: int = field(
        0,
        "MoCo: keys in the queue of negatives (0 = the largest power of 2 up to a tenth of the "
        "train images, at most 65536, at least one batch).",
        valid=NON_NEGATIVE,
    )
    shuffle_bn: bool = field(
        False,
        "MoCo: shuffled BN: keys are computed on the global batch in a random order, in "
        "--bn_splits groups per replica with their own batch statistics, then put back in "
        "order (on by default for moco; --global_bn is the alternative).",
    )
    bn_splits: int = field(
        0,
        "MoCo with --shuffle_bn: batch-norm groups per replica, queries and keys alike "
        "(0 = per-replica batch / 32, between 1 and 8).",
        valid=NON_NEGATIVE,
    )
    knn: bool = field(False, "Eval: also score the weighted k-NN classifier on frozen features.")
    knn_k: int = field(
        200, "k-NN monitor: neighbours (0 = no k-NN monitor while pretraining).", valid=NON_NEGATIVE
    )
    knn_temperature: float = field(
        0.1, "k-NN monitor: neighbours vote with weight exp(cosine / T).", valid=POSITIVE
    )
    knn_every_epochs: float = field(
        1.0,
        "k-NN monitor while pretraining: every this many epochs and at the end (0 = at the end "
        "only).",
        valid=NON_NEGATIVE,
    )
    knn_bank_size: int = field(
        0,
        "k-NN monitor: train images in the feature bank, a fixed random subset (0 = the whole "
        "train split; cap it on large datasets: each pass encodes the bank once).",
        valid=NON_NEGATIVE,
    )


@dataclasses.dataclass(frozen=True)
class FixMatchFields:
    """FixMatch and self-training."""

    unlabeled_ratio: int = field(
        7, "FixMatch: unlabeled images per labeled image in a step (mu).", valid=POSITIVE
    )
    confidence_threshold: float = field(
        0.95,
        "FixMatch: keep a pseudo-label when its probability is at least this (tau).",
        valid=PROBABILITY,
    )
    unlabeled_loss_weight: float = field(
        1.0,
        "FixMatch: weight of the pseudo-label loss (lambda; 0 = the supervised baseline).",
        valid=NON_NEGATIVE,
    )
    distribution_alignment: bool = field(
        False, "FixMatch: align pseudo-label distributions to the labeled one (ReMixMatch)."
    )
    self_adaptive_threshold: bool = field(
        False,
        "FixMatch: FreeMatch's self-adaptive per-class thresholds in place of "
        "--confidence_threshold (Wang et al. 2023).",
    )
    randaugment_num_ops: int = field(
        2, "Strong augmentation: RandAugment operations per image.", valid=NON_NEGATIVE
    )
    cutout_fraction: float = field(
        0.5,
        "Strong augmentation: Cutout square side over image side (0 = none).",
        valid=PROBABILITY,
    )
    curriculum_step: float = field(
        20.0,
        "Self-train: percent of the unlabeled pool added per round (20, 40, ..., 100).",
        valid=(lambda v: 0 < v <= 100, "must be in (0, 100]"),
    )
    reinit: bool = field(True, "Self-train: a fresh student each round (false: continue).")
    balance_pseudo_labels: bool = field(
        True,
        "Self-train: take the most confident percent within each predicted class (false: of "
        "the whole pool, as Curriculum Labeling does).",
    )
    pseudo_labels: str = field(
        "", "Self-train round: .npz of pseudo-labeled train images (indices, labels)."
    )
    noisy_student: bool = field(
        True, "Self-train: noise the student (strong augmentation, --student_dropout)."
    )
    student_dropout: float = field(
        0.5, "Self-train: dropout before the student's head with --noisy_student.", valid=BELOW_ONE
    )


@dataclasses.dataclass(frozen=True)
class MilFields:
    """Multiple-instance learning."""

    mil_pooling: str = field(
        "attention",
        "MIL: how instance embeddings become a bag embedding: max, mean, or (gated) attention "
        "(Ilse et al. 2018).",
        ("max", "mean", "attention", "gated_attention"),
    )
    mil_attention_dim: int = field(
        128, "MIL: hidden size D of the attention network (paper: 128).", valid=POSITIVE
    )
    mil_freeze_encoder: bool = field(
        False, "MIL: keep the --checkpoint encoder frozen (else it is fine-tuned)."
    )
    mil_target: int = field(9, "MNIST-bags: a bag is positive when it holds this digit.")
    mil_bag_mean: float = field(10.0, "MNIST-bags: mean bag size.", valid=POSITIVE)
    mil_bag_std: float = field(2.0, "MNIST-bags: standard deviation of the bag size.")
    mil_train_bags: int = field(
        200, "MNIST-bags: training bags (the validation bags among them).", valid=POSITIVE
    )
    mil_test_bags: int = field(1000, "MNIST-bags: test bags (fixed seed).", valid=POSITIVE)
    mil_positive_fraction: float = field(
        0.5,
        "MNIST-bags: share of positive bags (0.5: balanced, as the authors' loader; 0: bags "
        "drawn at random, positive when they happen to hold the target).",
        valid=BELOW_ONE,
    )
    mil_val_fraction: float = field(
        0.2,
        "MIL: share of the training bags held out (per class) for early stopping, unless the "
        "data has a validation split.",
        valid=BELOW_ONE,
    )
    mil_patience: int = field(
        25,
        "MIL: stop after this many checkpoint intervals (epochs) without a better validation "
        "error (ties: loss), and keep the best weights; 0 = train all epochs, keep the last.",
        valid=NON_NEGATIVE,
    )


@dataclasses.dataclass(frozen=True)
class PretextFields:
    """Pretext tasks (rotation, jigsaw, context_encoder, colorization, mae) and ViT."""

    jigsaw_permutations: int = field(
        100,
        "Jigsaw: the P permutations classified, chosen for large Hamming distance (saved in "
        "model_dir).",
        valid=(lambda v: 2 <= v <= 362880, "must be 2..9! (362880)"),
    )
    mask_mode: str = field(
        "center",
        "Context encoder: mask the central square (a quarter of the image) or random blocks "
        "covering a quarter of it.",
        ("center", "random"),
    )
    adversarial_weight: float = field(
        0.0,
        "Context encoder: weight of the adversarial loss beside the L2 reconstruction "
        "(paper: 0.001; 0 = no discriminator).",
        valid=NON_NEGATIVE,
    )
    colorization_loss: str = field(
        "classification",
        "Colorization: cross-entropy over quantised ab bins with class rebalancing (Zhang et "
        "al.), or L2 on ab.",
        ("classification", "l2"),
    )
    mask_ratio: float = field(0.75, "MAE: fraction of the patches removed.", valid=BELOW_ONE)
    norm_pix_loss: bool = field(True, "MAE: normalise each target patch (mean 0, variance 1).")
    mae_decoder_depth: int = field(2, "MAE: transformer blocks in the decoder.", valid=POSITIVE)
    mae_decoder_width: int = field(64, "MAE: width of the decoder.", valid=POSITIVE)
    vit_patch_size: int = field(4, "ViT: patch size in pixels.", valid=POSITIVE)
    vit_depth: int = field(6, "ViT: transformer blocks.", valid=POSITIVE)
    vit_width: int = field(
        128, "ViT: token width (a multiple of 4 and of the heads).", valid=POSITIVE
    )
    vit_num_heads: int = field(4, "ViT: attention heads.", valid=POSITIVE)


@dataclasses.dataclass(frozen=True)
class MicleFields:
    """MICLe: positives from one patient."""

    positive_pairs: str = field(
        "augment",
        "Pretraining positives: augment = two augmentations of one image (SimCLR); same_group = "
        "two images of one group (e.g. a patient: a csv group column, or --folder_groups), each "
        "augmented, with at most one anchor per group in a batch (MICLe, Azizi et al. 2021).",
        ("augment", "same_group"),
    )
    folder_groups: bool = field(
        False,
        "Folder datasets have a group level (e.g. the patient) under each class: "
        "root/[<split>/]<class>/<group>/<image>.",
    )


@dataclasses.dataclass(frozen=True)
class DistillFields:
    """SimCLRv2's distillation (--mode=distill); its --teacher is shared with self-training."""

    student_resnet_depth: int = field(0, "Distill: student depth (0 = teacher's).")
    student_width_multiplier: float = field(0.0, "Distill: student width (0 = teacher's).")
    student_init: str = field(
        "scratch",
        "Distill: the student's first weights: scratch (SimCLRv2) or teacher (a copy of the "
        "fine-tuned tfssl teacher, same network).",
        ("scratch", "teacher"),
    )
    distill_temperature: float = field(1.0, "Distill: softmax temperature T.", valid=POSITIVE)
    distill_label_weight: float = field(
        0.0, "Distill: weight of the cross-entropy on a second batch, of labeled images."
    )
    distill_known_labels: bool = field(
        False,
        "Distill: the labeled images among the distilled ones also learn their own label "
        "(cross-entropy, no extra batch).",
    )
