"""SimCLRv2 stage 3: distil a fine-tuned teacher into a student on unlabeled images.

The teacher (a tfssl run or an exported SavedModel) labels each augmented
image with its softened class probabilities; the student, of the same size
(self-distillation) or smaller, learns them. The paper distils on every train
image, labeled or not, without using labels; --distill_known_labels adds the
cross-entropy of the labeled images among them (SimCLRv2's combined loss, at no extra cost), and
--distill_label_weight that of a second, labeled batch. --student_init=teacher starts the
student as a copy of a tfssl teacher (its network and weights), so a short run refines the
teacher instead of rebuilding it.
"""

import tensorflow as tf

from tfssl import restore
from tfssl.errors import ConfigError
from tfssl.losses.supervised import (
    accuracy,
    cross_entropy,
    distillation_loss,
    known_label_cross_entropy,
)
from tfssl.methods.base import Method
from tfssl.methods.finetune import LABELED_TRAINING_DEFAULTS
from tfssl.models.factory import build_simclr_model
from tfssl.train.checkpoints import resolve_checkpoint, run_config
from tfssl.train.warm_start import official_model, warm_start


class Distill(Method):
    job = "distill"
    progress_metrics = ("loss", "distill_loss", "teacher_agreement")
    defaults = dict(LABELED_TRAINING_DEFAULTS, train_epochs=2, checkpoint_epochs=1)

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if not (cfg.teacher or cfg.checkpoint):
            raise ConfigError(
                "--mode=distill needs --teacher=<fine-tuned model_dir or SavedModel> "
                "(or --checkpoint=, e.g. an official fine-tuned checkpoint)"
            )
        if cfg.teacher and cfg.checkpoint and cfg.teacher != cfg.checkpoint:
            raise ConfigError(
                "--mode=distill: --checkpoint names the teacher when --teacher is not given; "
                "give one of them"
            )
        if cfg.distill_known_labels and cfg.distill_label_weight:
            raise ConfigError(
                "--distill_known_labels and --distill_label_weight both add the labeled "
                "cross-entropy; give one of them"
            )
        if cfg.student_init == "teacher" and (
            cfg.student_resnet_depth or cfg.student_width_multiplier
        ):
            raise ConfigError(
                "--student_init=teacher copies the teacher's network; leave out "
                "--student_resnet_depth and --student_width_multiplier"
            )

    def build(self):
        cfg = self.cfg
        if cfg.student_init == "teacher":
            self.model = self._teacher_copy()
        else:
            self.model = build_simclr_model(
                cfg,
                self.data.info.num_classes,
                self.data.image_shape,
                self.num_replicas,
                proj_head_mode="none",
                depth=cfg.student_resnet_depth,
                width=cfg.student_width_multiplier,
            )
        self.teacher = None

    def _teacher_copy(self):
        """A trainable network shaped as the teacher's: its ResNet (the run's inherited network),
        the projection layers its head reads (--ft_proj_selector, set by copied_student_config)
        and its linear head."""
        kept = self.cfg.proj_layers_kept
        return build_simclr_model(
            self.cfg,
            self.data.info.num_classes,
            self.data.image_shape,
            self.num_replicas,
            proj_head_mode=None if kept else "none",
            ft_proj_selector=kept,
            num_proj_layers_kept=kept,
        )

    def initialize(self):
        if self.cfg.student_init == "teacher":
            prefix = resolve_checkpoint(self.cfg.teacher or self.cfg.checkpoint, "--teacher").prefix
            warm_start(self.model, prefix, False, ".*", "--teacher")

    def setup_training(self):
        path = self.cfg.teacher or self.cfg.checkpoint
        self.teacher, teacher_classes = load_teacher(path, self.data.image_shape, self.cfg)
        if teacher_classes != self.data.info.num_classes:
            raise ConfigError(
                f"--teacher={path} predicts {teacher_classes} classes but "
                f"{self.cfg.dataset} has {self.data.info.num_classes}; "
                "distil on the teacher's dataset"
            )

    def train_dataset(self, input_context, start_step):
        cfg = self.cfg
        everything = "all_known" if cfg.distill_known_labels else "all"
        unlabeled = self.data.train_batches(
            self.crop_flip_view, cfg.train_batch_size, everything, input_context, start_step
        )
        if not cfg.distill_label_weight:
            return unlabeled
        labeled = self.data.train_batches(
            self.crop_flip_view,
            cfg.train_batch_size,
            "labeled",
            input_context,
            start_step,
            stream=1,
        )
        return tf.data.Dataset.zip(unlabeled, labeled)

    def loss(self, batch):
        cfg = self.cfg
        (images, known_labels), labeled = (batch, None) if not cfg.distill_label_weight else batch
        teacher_logits = self.teacher(images)
        student_logits = self.model(images, training=True)["logits"]
        loss = distillation_loss(teacher_logits, student_logits, cfg.distill_temperature)
        agreement = tf.reduce_mean(
            tf.cast(
                tf.equal(tf.argmax(teacher_logits, -1), tf.argmax(student_logits, -1)), tf.float32
            )
        )
        metrics = {"distill_loss": loss, "teacher_agreement": agreement}
        if cfg.distill_known_labels:
            known_loss = known_label_cross_entropy(known_labels, student_logits, self.class_weights)
            metrics["known_label_loss"] = known_loss
            loss += known_loss
        if labeled is not None:
            labeled_logits = self.model(labeled[0], training=True)["logits"]
            supervised_loss = cross_entropy(labeled[1], labeled_logits, self.class_weights)
            metrics.update(
                supervised_loss=supervised_loss, supervised_acc=accuracy(labeled[1], labeled_logits)
            )
            loss += cfg.distill_label_weight * supervised_loss
        return loss, metrics

    def summary_images(self, batch):
        return (batch if not self.cfg.distill_label_weight else batch[0])[0][:8]


def copied_student_config(cfg, resolved):
    """cfg of a student copied from the teacher at `resolved` (--student_init=teacher): the
    teacher's network (trained_cfg) and, as --ft_proj_selector, the projection layers under its
    linear head, which the run's flags.json then keeps. One-line errors for a teacher it cannot
    copy."""
    path = cfg.teacher or cfg.checkpoint
    if resolved.official or not resolved.prefix:
        raise ConfigError(
            f"--student_init=teacher copies a tfssl run, and --teacher={path} is "
            f"{'an official checkpoint' if resolved.official else 'a SavedModel'}; give the "
            "teacher's model_dir or use --student_init=scratch"
        )
    teacher_cfg, job = run_config(resolved.run_dir, "--teacher")
    if job == "finetune" or (job == "distill" and teacher_cfg.student_init == "teacher"):
        kept = teacher_cfg.proj_layers_kept
    elif job in ("supervised", "distill"):
        kept = 0
    else:
        raise ConfigError(
            f"--student_init=teacher: --teacher={path} is a {job} run; give a fine-tuned, "
            "supervised or distilled run"
        )
    return cfg.with_architecture_of(teacher_cfg).replace(ft_proj_selector=kept)


def load_teacher(path, image_shape, cfg=None):
    """(images -> teacher logits, number of classes), from a tfssl run, an exported SavedModel or an
    official SimCLR TF2 checkpoint with a linear head (a fine-tuned one; cfg: the run's config)."""
    resolved = resolve_checkpoint(path, "--teacher", allow_saved_model=True)
    if resolved.official:
        model, _, extra = official_model(cfg, resolved, image_shape, "--teacher")
        if not extra["num_classes"]:
            raise ConfigError(
                f"--teacher={path} is an official checkpoint without a linear head "
                "(head_supervised); fine-tune it first (--mode=finetune --checkpoint=...)"
            )
        teacher = lambda images: model(images, training=False)["logits"]  # noqa: E731
    elif resolved.saved_model_dir:
        loaded = tf.saved_model.load(resolved.saved_model_dir)
        teacher = lambda images: loaded.call_inference(images)["logits"]  # noqa: E731
    else:
        teacher = restore.load_trained(path, flag="--teacher", setup=False)[0].eval_logits
    return teacher, int(teacher(tf.zeros([1, *image_shape])).shape[-1])
