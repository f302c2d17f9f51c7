"""Fine-tuning a pretrained SimCLR network on the labeled subset, and the supervised baseline
(the same network and data, trained from scratch)."""

import tensorflow as tf

from tfssl import restore
from tfssl.data import augment
from tfssl.losses.supervised import accuracy, cross_entropy
from tfssl.methods.base import Method
from tfssl.models.factory import build_simclr_model


class LabeledTraining(Method):
    """Cross-entropy on crop+flip views of the labeled subset; an epoch is one pass over it."""

    progress_metrics = ("loss", "supervised_acc")

    @property
    def examples_per_epoch(self):
        return self.data.num_examples("labeled")

    def view(self, image, seed):
        return augment.finetune_view(
            image, self.data.image_size, seed, self.cfg.crop_min_area, self.cfg.use_flip
        )

    def train_dataset(self, input_context, start_step):
        return self.data.train_batches(
            self.view, self.cfg.train_batch_size, "labeled", input_context, start_step
        )

    def loss(self, batch):
        images, labels = batch
        logits = self.model(images, training=True)["logits"]
        loss = cross_entropy(labels, logits)
        return loss, {"supervised_loss": loss, "supervised_acc": accuracy(labels, logits)}

    def summary_images(self, batch):
        return batch[0][:8]


class Supervised(LabeledTraining):
    """The baseline: the same ResNet and linear head, randomly initialised."""

    job = "supervised"

    def build(self):
        self.model = build_simclr_model(
            self.cfg,
            self.data.info.num_classes,
            self.data.image_shape,
            self.num_replicas,
            proj_head_mode="none",
        )


class FineTune(LabeledTraining):
    """SimCLRv2 fine-tuning: restore encoder and projection head, keep ft_proj_selector projection
    layers, put a (optionally zero-initialised) linear head on the last kept one, and freeze the
    encoder up to fine_tune_after_block (4: linear evaluation, batch norm statistics included)."""

    job = "finetune"

    def build(self):
        cfg = self.cfg
        self.model = build_simclr_model(
            cfg,
            self.data.info.num_classes,
            self.data.image_shape,
            self.num_replicas,
            fine_tune_after_block=cfg.fine_tune_after_block,
            ft_proj_selector=cfg.ft_proj_selector,
            num_proj_layers_kept=cfg.ft_proj_selector,
            zero_init_logits=cfg.zero_init_logits_layer,
        )
        if cfg.fine_tune_after_block >= 4:  # linear evaluation: nothing below the head learns
            self.model.projection_head.trainable = False

    def initialize(self):
        resolved = restore.resolve_checkpoint(self.cfg.checkpoint)
        restore.restore_into(
            {
                "model": tf.train.Checkpoint(
                    encoder=self.model.encoder, projection_head=self.model.projection_head
                )
            },
            resolved.prefix,
            "pretrained checkpoint",
        )
        restore.log.info("fine-tuning from %s", resolved.prefix)
