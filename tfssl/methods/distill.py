"""SimCLRv2 stage 3: distil a fine-tuned teacher into a student on unlabeled images.

The teacher (a tfssl run or an exported SavedModel) labels each augmented
image with its softened class probabilities; the student, of the same size
(self-distillation) or smaller, learns them. The paper distils on every train
image, labeled or not, without using labels; --distill_label_weight adds the
labeled cross-entropy.
"""

import tensorflow as tf

from tfssl import restore
from tfssl.errors import ConfigError
from tfssl.losses.supervised import accuracy, cross_entropy, distillation_loss
from tfssl.methods.base import Method
from tfssl.methods.finetune import LABELED_TRAINING_DEFAULTS
from tfssl.models.factory import build_simclr_model
from tfssl.train.checkpoints import resolve_checkpoint


class Distill(Method):
    job = "distill"
    progress_metrics = ("loss", "distill_loss", "teacher_agreement")
    defaults = dict(LABELED_TRAINING_DEFAULTS, train_epochs=2, checkpoint_epochs=1)

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if not cfg.teacher:
            raise ConfigError("--mode=distill needs --teacher=<fine-tuned model_dir or SavedModel>")

    def build(self):
        cfg = self.cfg
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

    def setup_training(self):
        self.teacher, teacher_classes = load_teacher(self.cfg.teacher, self.data.image_shape)
        if teacher_classes != self.data.info.num_classes:
            raise ConfigError(
                f"--teacher={self.cfg.teacher} predicts {teacher_classes} classes but "
                f"{self.cfg.dataset} has {self.data.info.num_classes}; "
                "distil on the teacher's dataset"
            )

    def train_dataset(self, input_context, start_step):
        cfg = self.cfg
        unlabeled = self.data.train_batches(
            self.crop_flip_view, cfg.train_batch_size, "all", input_context, start_step
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
        (images, _), labeled = (batch, None) if not cfg.distill_label_weight else batch
        teacher_logits = self.teacher(images)
        student_logits = self.model(images, training=True)["logits"]
        loss = distillation_loss(teacher_logits, student_logits, cfg.distill_temperature)
        agreement = tf.reduce_mean(
            tf.cast(
                tf.equal(tf.argmax(teacher_logits, -1), tf.argmax(student_logits, -1)), tf.float32
            )
        )
        metrics = {"distill_loss": loss, "teacher_agreement": agreement}
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


def load_teacher(path, image_shape):
    """(images -> teacher logits, number of classes), from a tfssl run or an exported SavedModel."""
    resolved = resolve_checkpoint(path, "--teacher", allow_saved_model=True)
    if resolved.saved_model_dir:
        loaded = tf.saved_model.load(resolved.saved_model_dir)
        teacher = lambda images: loaded.call_inference(images)["logits"]  # noqa: E731
    else:
        teacher = restore.load_trained(path, flag="--teacher", setup=False)[0].eval_logits
    return teacher, int(teacher(tf.zeros([1, *image_shape])).shape[-1])
