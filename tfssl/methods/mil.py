"""Attention-based deep multiple-instance learning (Ilse, Tomczak & Welling, ICML 2018).

One label per bag of images. The network (tfssl/models/mil.py) encodes every instance, pools the
embeddings (max, mean, attention or gated attention) and classifies the bag; the loss is the
bag's negative log-likelihood (Bernoulli for two classes, softmax for K). The encoder is the
paper's LeNet-style network, or tfssl's ResNet, which --checkpoint loads from a pretraining run
(SimCLR), frozen (--mil_freeze_encoder) or fine-tuned.

Defaults follow the authors' code: Adam, learning rate 5e-4, weight decay 1e-4 (an L2 loss, as
PyTorch's Adam applies it), one bag per step, at most 200 epochs. Early stopping scores a
validation split of the training bags after every epoch (--checkpoint_epochs) and keeps the
weights with the lowest validation error (ties: the lowest loss); it stops after --mil_patience
epochs without one.

The eval writes every bag's prediction and instance weights to attention_<split>.json in the run
directory, and instance-level scores where instance labels exist (MNIST-bags); training ends with
attention_bags.png, test bags with each instance's weight.
"""

import logging
import os

import numpy as np
import tensorflow as tf

from tfssl.data.bags import BagData
from tfssl.errors import ConfigError
from tfssl.losses.mil import bag_nll, bag_probabilities, macro_auc, roc_auc
from tfssl.methods.base import Method
from tfssl.models.factory import encoder_config
from tfssl.models.mil import MILModel
from tfssl.train import distribute
from tfssl.train.checkpoints import resolve_checkpoint, restore_into
from tfssl.train.rundir import write_json

log = logging.getLogger("tfssl")

WEIGHT_NAMES = {
    "attention": "attention",
    "gated_attention": "gated attention",
    "mean": "mean-pooling (1/n)",
    "max": "max-pooling (share of maxima)",
}


class EarlyStopping(tf.Module):
    """Best validation error and loss so far, epochs without improvement, the best weights."""

    def __init__(self, variables):
        super().__init__(name="mil_early_stopping")
        self.best_error = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        self.best_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        self.best_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.bad_checks = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.stopped = tf.Variable(False, trainable=False)
        self.variables_watched = list(variables)
        self.best_weights = [
            tf.Variable(tf.convert_to_tensor(v), trainable=False) for v in variables
        ]

    def update(self, error, loss, step):
        """Records a validation score; True when it is the best so far (its weights are kept)."""
        best_error, best_loss = float(self.best_error.numpy()), float(self.best_loss.numpy())
        improved = error < best_error or (error == best_error and loss < best_loss)
        if improved:
            self.best_error.assign(error)
            self.best_loss.assign(loss)
            self.best_step.assign(step)
            self.bad_checks.assign(0)
            for best, v in zip(self.best_weights, self.variables_watched):
                best.assign(tf.convert_to_tensor(v))
        else:
            self.bad_checks.assign_add(1)
        return improved

    def restore_best(self):
        for best, v in zip(self.best_weights, self.variables_watched):
            v.assign(best.read_value())


class MIL(Method):
    job = "mil"
    uses_label_subset = False
    progress_metrics = ("loss", "bag_acc")
    architectures = ("auto", "resnet")
    defaults = dict(
        dataset="mnist_bags",
        optimizer="adam",
        learning_rate=5e-4,
        learning_rate_scaling="constant",
        lr_schedule="constant",
        warmup_epochs=0.0,
        weight_decay=1e-4,
        train_batch_size=1,
        eval_batch_size=64,
        train_epochs=200,
        checkpoint_epochs=1,
        keep_checkpoint_max=2,
        log_every_secs=30.0,
    )

    @classmethod
    def make_data(cls, cfg, run_dir):
        return BagData(cfg, run_dir)

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if cfg.mil_freeze_encoder and not cfg.checkpoint:
            raise ConfigError(
                "--mil_freeze_encoder keeps a pretrained encoder fixed: give "
                "--checkpoint=<pretrain run>, or leave the flag off"
            )
        if cfg.bn_recalibration_batches:
            raise ConfigError("--mode=mil does not re-estimate batch norm; leave it at 0")

    @property
    def encoder_kind(self):
        """LeNet unless --architecture=resnet or a pretrained (ResNet) encoder is loaded."""
        return "resnet" if self.cfg.architecture == "resnet" or self.cfg.checkpoint else "lenet"

    @property
    def images_per_step(self):
        """Instances one step reads on average (the progress line's img/s)."""
        sizes = self.data.bags(self.cfg.train_split).sizes
        return self.cfg.train_batch_size * float(np.mean(sizes))

    @property
    def binary(self):
        return self.data.info.num_classes == 2

    def build(self):
        cfg, shape = self.cfg, self.data.image_shape
        synchronized = cfg.global_bn and self.num_replicas > 1
        self.model = MILModel(
            num_classes=self.data.info.num_classes,
            encoder=self.encoder_kind,
            encoder_config=encoder_config(cfg, shape[0], synchronized)
            if self.encoder_kind == "resnet"
            else None,
            pooling=cfg.mil_pooling,
            attention_dim=cfg.mil_attention_dim,
            freeze_encoder=cfg.mil_freeze_encoder,
            name="mil_model",
        )
        self.model({"instances": tf.zeros([1, 1, *shape]), "mask": tf.ones([1, 1], tf.bool)})
        self.early_stopping = EarlyStopping(self.model.weights)
        self._forward = self._summaries = None
        self._kept_images = {}
        self._chief = distribute.is_chief(tf.distribute.get_strategy())

    def checkpoint_items(self):
        return {"model": self.model, "mil_early_stopping": self.early_stopping}

    def initialize(self):
        if not self.cfg.checkpoint:
            return
        resolved = resolve_checkpoint(self.cfg.checkpoint)
        pretrained = tf.train.Checkpoint(encoder=self.model.encoder)
        restore_into({"model": pretrained}, resolved.prefix, "pretrained checkpoint")
        log.info(
            "MIL encoder from %s (%s)",
            resolved.prefix,
            "frozen" if self.cfg.mil_freeze_encoder else "fine-tuned",
        )

    # --- training ---
    def train_dataset(self, input_context, start_step):
        return self.data.train_batches(self.cfg.train_batch_size, input_context, start_step)

    def loss(self, batch):
        logits = self.model(
            {"instances": batch["instances"], "mask": batch["mask"]}, training=True
        )["logits"]
        loss = bag_nll(batch["label"], logits)
        predicted = tf.argmax(bag_probabilities(logits), -1)
        correct = tf.cast(tf.equal(predicted, tf.cast(batch["label"], tf.int64)), tf.float32)
        return loss, {"bag_nll": loss, "bag_acc": tf.reduce_mean(correct)}

    def summary_images(self, batch):
        return batch["instances"][0][:8]

    def at_checkpoint(self, step):
        from tfssl.train.progress import Summaries
        from tfssl.train.trainer import total_train_steps

        cfg = self.cfg
        if not cfg.mil_patience:
            return
        scores = self._scores(self._predict("validation", cfg.eval_batch_size))
        epoch = step * cfg.train_batch_size / self.examples_per_epoch
        if self._summaries is None:
            self._summaries = Summaries(
                os.path.join(self.data.run_dir, "validation"), enabled=self._chief
            )
        self._summaries.scalars(scores, step, prefix="validation/")
        stopping = self.early_stopping
        stopping.update(scores["error"], scores["loss"], step)
        last = step >= total_train_steps(cfg, self.examples_per_epoch)
        if stopping.bad_checks.numpy() >= cfg.mil_patience or last:
            why = "last epoch" if last else f"{cfg.mil_patience} epochs without a better score"
            best_epoch = int(stopping.best_step.numpy()) * cfg.train_batch_size
            log.info(
                "validation: stop at epoch %.0f (%s); keeping epoch %.0f's weights (validation "
                "error %.4f, loss %.4f)",
                epoch,
                why,
                best_epoch / self.examples_per_epoch,
                stopping.best_error.numpy(),
                stopping.best_loss.numpy(),
            )
            stopping.stopped.assign(True)
            stopping.restore_best()

    def stopped_early(self):
        return bool(self.early_stopping.stopped.numpy())

    # --- evaluation ---
    def has_classifier(self):
        return False  # bags, not images: extra_eval_metrics scores them

    def _forward_fn(self):
        if self._forward is None:
            self._forward = tf.function(
                lambda batch: self.model(batch, training=False),
                reduce_retracing=True,
                autograph=False,
            )
        return self._forward

    def _predict(self, split, batch_size, max_batches=0, keep_images=0):
        """Every bag of split: label, probabilities, instance weights and labels (and the images
        of the first keep_images bags of each class)."""
        forward, bags, kept = self._forward_fn(), [], {}
        batches = self.data.eval_batches(split, batch_size)
        if max_batches:
            batches = batches.take(max_batches)
        for batch in batches:
            out = forward({"instances": batch["instances"], "mask": batch["mask"]})
            probabilities = bag_probabilities(out["logits"]).numpy()
            weights, sizes = out["attention"].numpy(), batch["mask"].numpy().sum(1)
            instance_labels = batch["instance_labels"].numpy()
            for b, (label, n) in enumerate(zip(batch["label"].numpy().tolist(), sizes)):
                bag = {
                    "label": label,
                    "probabilities": probabilities[b].tolist(),
                    "attention": weights[b, :n].tolist(),
                    "instance_labels": instance_labels[b, :n].tolist(),
                }
                if keep_images and len(kept.setdefault(label, [])) < keep_images:
                    kept[label].append({**bag, "instances": batch["instances"][b, :n].numpy()})
                bags.append(bag)
        if keep_images:
            self._kept_images = kept
        return bags

    def _scores(self, bags):
        labels = np.array([b["label"] for b in bags])
        probabilities = np.array([b["probabilities"] for b in bags])
        chosen = probabilities[np.arange(len(labels)), labels]
        return {
            "error": float(np.mean(probabilities.argmax(-1) != labels)),
            "loss": float(np.mean(-np.log(np.clip(chosen, 1e-7, 1.0)))),
        }

    def extra_eval_metrics(self, split, batch_size, max_batches=0):
        bags = self._predict(split, batch_size, max_batches, keep_images=4)
        labels = np.array([b["label"] for b in bags])
        probabilities = np.array([b["probabilities"] for b in bags])
        scores = self._scores(bags)
        metrics = {
            "auc": macro_auc(labels, probabilities),
            "accuracy": 1.0 - scores["error"],
            "loss": scores["loss"],
            "num_bags": len(bags),
        }
        metrics.update(instance_scores(bags))
        if self.cfg.mil_patience and int(self.early_stopping.best_step.numpy()) >= 0:
            step = int(self.early_stopping.best_step.numpy())
            metrics["best_epoch"] = step * self.cfg.train_batch_size / self.examples_per_epoch
            metrics["best_validation_error"] = float(self.early_stopping.best_error.numpy())
        source = self.data.bags(split)
        for i, bag in enumerate(bags):
            if source.names:
                bag["name"] = source.names[i]
            if source.instance_ids is not None:
                start, stop = source.row_splits[i], source.row_splits[i + 1]
                bag["instance_ids"] = source.instance_ids[start:stop].tolist()
        if not max_batches:
            path = os.path.join(self.data.run_dir, f"attention_{split.replace('/', '_')}.json")
            os.makedirs(self.data.run_dir, exist_ok=True)
            write_json(
                path,
                {
                    "split": split,
                    "pooling": self.cfg.mil_pooling,
                    "metrics": metrics,
                    "class_names": list(self.data.info.class_names),
                    "bags": bags,
                },
            )
        return metrics

    def write_figures(self):
        from tfssl import plots_mil

        kept = self._kept_images
        order = sorted(kept, reverse=True)  # positives (label 1) first for two classes
        shown = [bag for label in order for bag in kept[label]]
        if shown:
            plots_mil.attention_bags(
                shown,
                os.path.join(self.data.run_dir, "attention_bags.png"),
                self.data.info.class_names,
                WEIGHT_NAMES[self.cfg.mil_pooling],
            )

    # --- export: one bag (N, H, W, C) of any N ---
    def export_outputs(self, images, training=False):
        out = self.model(images, training=training)
        probabilities = bag_probabilities(out["logits"])
        outputs = {
            "logits": out["logits"],
            "probabilities": probabilities,
            "attention": out["attention"][0],
            "bag_embedding": out["bag_embedding"],
        }
        if self.binary:
            outputs["bag_probability"] = probabilities[:, 1]
        return outputs


def instance_scores(bags):
    """Where instance labels exist (1 = key instance): the share of positive bags whose
    highest-weighted instance is a key instance, and the ROC AUC of weight x bag size against
    the instance labels over the instances of positive bags."""
    positive = [b for b in bags if b["label"] == 1 and min(b["instance_labels"], default=-1) >= 0]
    if not positive:
        return {}
    hits = [b["instance_labels"][int(np.argmax(b["attention"]))] == 1 for b in positive]
    weights = np.concatenate([np.asarray(b["attention"]) * len(b["attention"]) for b in positive])
    keys = np.concatenate([b["instance_labels"] for b in positive])
    return {"instance_top1_hit_rate": float(np.mean(hits)), "instance_auc": roc_auc(keys, weights)}
