"""SimCLR contrastive pretraining, with an optional linear head trained on frozen features.

A positive pair is two augmentations of one image, or with --positive_pairs=same_group (MICLe,
Azizi et al. 2021) two images of one group, e.g. one patient, each augmented, with at most one
anchor per group in a batch (tfssl/data/groups.py); a group of one image falls back to SimCLR's
pair.
"""

import tensorflow as tf

from tfssl.data import augment
from tfssl.errors import ConfigError
from tfssl.losses.contrastive import contrast_metrics, nt_xent
from tfssl.losses.supervised import accuracy, cross_entropy
from tfssl.methods.base import Method
from tfssl.models.factory import build_simclr_model
from tfssl.train.checkpoints import resolve_checkpoint
from tfssl.train.warm_start import warm_start


class SimCLRPretrain(Method):
    job = "pretrain"
    uses_label_subset = False
    pairs_from_groups = True
    progress_metrics = ("loss", "contrast_loss", "contrast_acc", "supervised_acc")

    #: The k-NN monitor runs while it trains (tfssl/train/knn.py).
    knn_monitor = True

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if cfg.positive_pairs == "same_group" and not cfg.cache_dataset:
            raise ConfigError(
                "--positive_pairs=same_group reads images by index: keep --cache_dataset "
                "(add --cache_dir=DIR for data larger than memory)"
            )

    def build(self):
        self.model = self.build_online_model()

    def build_online_model(self):
        """The network that is trained, evaluated, exported and fine-tuned: the encoder, the
        projection head and, with --lineareval_while_pretraining, a linear head on frozen
        features."""
        cfg = self.cfg
        if cfg.positive_pairs == "same_group":  # a source without groups fails before the network
            self.data.group_index.check_batch(cfg.train_batch_size, cfg.dataset)
        return build_simclr_model(
            cfg,
            self.data.info.num_classes if cfg.lineareval_while_pretraining else 0,
            self.data.image_shape,
            self.num_replicas,
            stop_gradient_to_head=True,
            ft_proj_selector=cfg.proj_layers_kept,  # the linear head's input, as officially
        )

    def initialize(self):
        """With --checkpoint (a tfssl or an official run), pretraining continues from its weights;
        the optimizer and step start afresh, as the official code does."""
        if self.cfg.checkpoint:
            resolved = resolve_checkpoint(self.cfg.checkpoint)
            warm_start(self.model, resolved.prefix, resolved.official, self.cfg.variable_schema)

    def train_dataset(self, input_context, start_step):
        cfg, size = self.cfg, self.data.image_size

        def view(image, seed):
            return augment.simclr_view(
                image,
                size,
                seed,
                cfg.color_jitter_strength,
                cfg.use_blur,
                cfg.crop_min_area,
                cfg.use_flip,
            )

        def pair_views(image_1, image_2, seed):  # on channels, as in the official input pipeline
            seed_1, seed_2 = augment.split_seed(seed, 2)
            return tf.concat([view(image_1, seed_1), view(image_2, seed_2)], -1)

        if cfg.positive_pairs == "same_group":
            return self.data.pair_batches(
                pair_views, cfg.train_batch_size, input_context, start_step
            )

        def two_views(image, seed):
            return pair_views(image, image, seed)

        return self.data.train_batches(
            two_views, cfg.train_batch_size, "all", input_context, start_step
        )

    def loss(self, batch):
        images, labels = batch
        views = tf.concat(tf.split(images, 2, axis=-1), 0)
        outputs = self.model(views, training=True)
        projection_1, projection_2 = tf.split(outputs["projection"], 2, 0)
        contrast_loss, logits, targets = nt_xent(
            projection_1, projection_2, self.cfg.temperature, self.cfg.hidden_norm
        )
        metrics = {"contrast_loss": contrast_loss, **contrast_metrics(logits, targets)}
        if labels.shape.rank == 2:  # same_group pairs: each view's own label
            both_labels = tf.concat([labels[:, 0], labels[:, 1]], 0)
        else:
            both_labels = tf.concat([labels, labels], 0)
        supervised_loss, supervised_metrics = self.linear_eval_loss(outputs, both_labels)
        return contrast_loss + supervised_loss, {**metrics, **supervised_metrics}

    def linear_eval_loss(self, outputs, labels):
        """(loss, metrics) of the linear head trained while pretraining (0 and {} without one).
        Its input is stop-gradiented: it learns on frozen features and leaves the encoder alone."""
        if "logits" not in outputs:
            return 0.0, {}
        supervised_loss = cross_entropy(labels, outputs["logits"], self.class_weights)
        return supervised_loss, {
            "supervised_loss": supervised_loss,
            "supervised_acc": accuracy(labels, outputs["logits"]),
        }

    def summary_images(self, batch):
        view_1, view_2 = tf.split(batch[0][:8], 2, axis=-1)
        return tf.concat([view_1, view_2], axis=2)  # each pair side by side

    def has_classifier(self):
        return self.cfg.lineareval_while_pretraining
