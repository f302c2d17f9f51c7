"""One round of self-training (--mode=self_train runs them, tfssl/self_train.py): a student learns
the labeled subset and a file of pseudo-labeled train images together.

The student is the SimCLR ResNet with a linear head (as --mode=supervised and distill build it),
trained with cross-entropy on batches drawn uniformly from the union of the labeled images (their
true labels) and the pseudo-labeled ones (--pseudo_labels, an .npz of train-split `indices` and
`labels`; a labeled image keeps its true label). With --noisy_student (on by default, Noisy Student,
Xie et al. 2020) the student is noised: strong augmentation (the crop of --crop_min_area and flip
of --use_flip, then RandAugment and Cutout, tfssl/data/randaugment.py) and dropout of
--student_dropout on the pooled features before the head. This ResNet has no stochastic depth.
Without --pseudo_labels it trains on the labeled subset alone. --checkpoint starts it from a
previous round's weights (self_train --reinit=false).
"""

import functools
import logging
import os

import numpy as np
import tensorflow as tf

from tfssl.data import augment, randaugment
from tfssl.errors import ConfigError, DataError
from tfssl.losses.supervised import accuracy, cross_entropy
from tfssl.methods.finetune import LABELED_TRAINING_DEFAULTS, LabeledTraining
from tfssl.train.checkpoints import resolve_checkpoint, restore_into

log = logging.getLogger("tfssl")


def read_pseudo_labels(path):
    """(indices, labels) of a pseudo-label file."""
    with np.load(path) as saved:
        return np.asarray(saved["indices"], np.int64), np.asarray(saved["labels"], np.int64)


def write_pseudo_labels(path, indices, labels, **extra):
    """Writes an .npz of pseudo-labels (and extra arrays) through a temporary file."""
    tmp = f"{path}.tmp{os.getpid()}.npz"
    indices, labels = np.asarray(indices, np.int64), np.asarray(labels, np.int64)
    np.savez(tmp, indices=indices, labels=labels, **extra)
    os.replace(tmp, path)


class SelfTrainRound(LabeledTraining):
    job = "self_train_round"
    progress_metrics = ("loss", "supervised_acc")
    architectures = ("auto", "resnet")
    defaults = dict(
        LABELED_TRAINING_DEFAULTS,
        proj_head_mode="none",
        train_epochs=3,
        checkpoint_epochs=1,
        crop_min_area=0.8,
    )

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if cfg.pseudo_labels and not os.path.exists(cfg.pseudo_labels):
            raise ConfigError(f"--pseudo_labels={cfg.pseudo_labels} does not exist")
        if cfg.strategy == "multi_worker":
            raise ConfigError(f"--mode={cfg.job} runs on one machine; use another --strategy")
        if cfg.job == "self_train" and cfg.checkpoint:
            raise ConfigError("--mode=self_train starts from --teacher, not --checkpoint")

    @functools.cached_property
    def targets(self):
        """One entry per train-split example: its label (true, or pseudo), or -1 if not trained
        on."""
        data = self.data
        targets = np.full(data.num_examples("all"), -1, np.int64)
        if self.cfg.pseudo_labels:
            indices, labels = read_pseudo_labels(self.cfg.pseudo_labels)
            if indices.size and (indices.min() < 0 or indices.max() >= targets.size):
                raise DataError(
                    f"--pseudo_labels={self.cfg.pseudo_labels} indexes past the "
                    f"{targets.size} images of {self.cfg.train_split}"
                )
            targets[indices] = labels
        labeled = data.labeled_indices
        targets[labeled] = np.asarray(data.source.labels(self.cfg.train_split))[labeled]
        return targets

    @property
    def examples_per_epoch(self):
        return int(np.sum(self.targets >= 0))

    def initialize(self):
        if self.cfg.checkpoint:
            resolved = resolve_checkpoint(self.cfg.checkpoint)
            restore_into({"model": self.model}, resolved.prefix, "previous round's checkpoint")
            log.info("continuing from %s", resolved.prefix)

    def view(self, image, seed):
        crop_seed, strong_seed = augment.split_seed(seed, 2)
        image = self.crop_flip_view(image, crop_seed)
        if not self.cfg.noisy_student:
            return image
        return randaugment.strong_view(
            image, strong_seed, self.cfg.randaugment_num_ops, self.cfg.cutout_fraction
        )

    def train_dataset(self, input_context, start_step):
        return self.data.train_batches(
            self.view,
            self.cfg.train_batch_size,
            input_context=input_context,
            start_step=start_step,
            targets=self.targets,
        )

    def loss(self, batch):
        images, labels = batch
        outputs = self.model(images, training=True)
        logits = outputs["logits"]
        rate = self.cfg.student_dropout if self.cfg.noisy_student else 0.0
        if rate:  # the head again, on dropped-out features (its input without a projection head)
            features = tf.nn.dropout(outputs["hiddens"], rate=rate)
            logits = self.model.supervised_head(features, training=True)
        loss = cross_entropy(labels, logits)
        return loss, {"supervised_loss": loss, "supervised_acc": accuracy(labels, logits)}
