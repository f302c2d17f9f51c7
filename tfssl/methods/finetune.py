"""Fine-tuning a pretrained SimCLR network on the labeled subset, and the supervised baseline
(the same network and data, trained from scratch)."""

import dataclasses
import logging
import os

import tensorflow as tf

from tfssl.errors import ConfigError
from tfssl.losses.supervised import accuracy, cross_entropy
from tfssl.methods.base import Method
from tfssl.models.factory import build_simclr_model
from tfssl.train.checkpoints import resolve_checkpoint, run_config
from tfssl.train.rundir import FLAGS_FILE
from tfssl.train.warm_start import warm_start

log = logging.getLogger("tfssl")

#: Labeled training on its own: SGD with Nesterov momentum, no weight decay, no warmup, crop+flip.
LABELED_TRAINING_DEFAULTS = dict(
    optimizer="momentum",
    learning_rate=0.1,
    weight_decay=0.0,
    warmup_epochs=0.0,
    train_epochs=30,
    checkpoint_epochs=10,
    color_jitter_strength=0.0,
    use_blur=False,
)


class LabeledTraining(Method):
    """Cross-entropy on crop+flip views of the labeled subset; an epoch is one pass over it."""

    progress_metrics = ("loss", "supervised_acc")
    architectures = ("auto", "resnet", "vit")

    @property
    def examples_per_epoch(self):
        return self.data.num_examples("labeled")

    def train_dataset(self, input_context, start_step):
        return self.data.train_batches(
            self.crop_flip_view, self.cfg.train_batch_size, "labeled", input_context, start_step
        )

    def loss(self, batch):
        images, labels = batch
        logits = self.model(images, training=True)["logits"]
        loss = cross_entropy(labels, logits, self.class_weights)
        return loss, {"supervised_loss": loss, "supervised_acc": accuracy(labels, logits)}

    def summary_images(self, batch):
        return batch[0][:8]

    def build(self):
        """The ResNet and a linear head, no projection head (FineTune keeps its projection)."""
        self.model = build_simclr_model(
            self.cfg,
            self.data.info.num_classes,
            self.data.image_shape,
            self.num_replicas,
            proj_head_mode="none",
        )


class Supervised(LabeledTraining):
    """The baseline: the same ResNet and linear head, randomly initialised."""

    job = "supervised"
    defaults = dict(LABELED_TRAINING_DEFAULTS, weight_decay=1e-4, proj_head_mode="none")


class FineTune(LabeledTraining):
    """SimCLRv2 fine-tuning: restore encoder and projection head, keep ft_proj_selector projection
    layers, put a (optionally zero-initialised) linear head on the last kept one, and freeze the
    encoder up to fine_tune_after_block (4: linear evaluation, batch norm statistics included)."""

    job = "finetune"
    defaults = dict(LABELED_TRAINING_DEFAULTS, ft_proj_selector=1)

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if not cfg.checkpoint:
            raise ConfigError(
                "--mode=finetune needs --checkpoint=<pretrain model_dir or prefix>; "
                "to train from scratch use --mode=supervised"
            )

    def build(self):
        cfg = self.cfg
        self.model = build_simclr_model(
            cfg,
            self.data.info.num_classes,
            self.data.image_shape,
            self.num_replicas,
            fine_tune_after_block=cfg.fine_tune_after_block,
            ft_proj_selector=cfg.proj_layers_kept,
            num_proj_layers_kept=cfg.proj_layers_kept,
            zero_init_logits=cfg.zero_init_logits_layer,
        )
        if cfg.fine_tune_after_block >= 4:  # linear evaluation: nothing below the head learns
            self.model.projection_head.trainable = False

    def _from_fine_tuned(self, resolved):
        """Whether the checkpoint is a tfssl fine-tuning run's (its flags.json says so)."""
        if resolved.official or not os.path.exists(os.path.join(resolved.run_dir, FLAGS_FILE)):
            return False
        return run_config(resolved.run_dir)[1] == self.job

    def initialize(self):
        """From a pretraining: the variables --variable_schema selects (by default all but the
        linear head, which starts fresh). From a fine-tuned run (e.g. a linear probe of that
        pretraining, --fine_tune_after_block=4): its whole network, head included, unless
        --variable_schema was changed, so fine-tuning starts where the probe ended (LP-FT, Kumar
        et al. 2022: a trained head keeps the first updates from distorting the features)."""
        cfg = self.cfg
        resolved = resolve_checkpoint(cfg.checkpoint)
        if self._from_fine_tuned(resolved):
            default = next(
                f.default for f in dataclasses.fields(cfg) if f.name == "variable_schema"
            )
            schema = ".*" if cfg.variable_schema == default else cfg.variable_schema
            warm_start(self.model, resolved.prefix, False, schema)
            log.info("fine-tuning from %s (a fine-tuned run: its head too)", resolved.prefix)
            return
        restored = warm_start(self.model, resolved.prefix, resolved.official, cfg.variable_schema)
        head = self.model.supervised_head
        if restored.get("head_supervised") and cfg.zero_init_logits_layer:
            for variable in head.trainable_variables:  # as the official code: zeroed after restore
                variable.assign(tf.zeros_like(variable))
        log.info("fine-tuning from %s", resolved.prefix)
