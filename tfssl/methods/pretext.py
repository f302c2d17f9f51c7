"""What the pretext-task objectives share (--ssl_method=rotation, jigsaw, context_encoder,
colorization, mae).

Each trains an encoder through a task network that is dropped afterwards. `self.model` is a
SimCLRModel without projection head (mode "none"): the encoder, and with
--lineareval_while_pretraining a linear head trained on its stop-gradient features, as SimCLR does.
So fine-tuning, distillation, eval and export read it as they read SimCLR's; the task network is
the checkpoint item "pretext".
"""

import os

import tensorflow as tf

from tfssl.errors import ConfigError
from tfssl.losses.supervised import accuracy, cross_entropy
from tfssl.methods.base import Method
from tfssl.models.factory import build_simclr_model

#: Flags all pretext tasks share where Config's (SimCLR's) differ.
PRETEXT_DEFAULTS = dict(
    proj_head_mode="none",
    optimizer="momentum",
    learning_rate=0.1,
    weight_decay=5e-4,
    warmup_epochs=0.5,
    crop_min_area=0.8,  # mild crops, as RotNet's and the jigsaw's random crops
    color_jitter_strength=0.0,
    use_blur=False,
)


class PretextTask(Method):
    job = "pretrain"
    uses_label_subset = False
    progress_metrics = ("loss", "pretext_loss", "pretext_acc", "supervised_acc")
    defaults = PRETEXT_DEFAULTS
    knn_monitor = True  # on the encoder's features, ResNet or ViT
    #: The task's figure, written into the run directory at the end of training.
    figure_file = ""
    #: How many test images the figure shows.
    figure_examples = 8

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if cfg.proj_head_mode != "none":
            raise ConfigError(
                f"--ssl_method={cfg.ssl_method} trains no projection head; "
                "leave --proj_head_mode=none"
            )

    @property
    def synchronized(self):
        return self.cfg.global_bn and self.num_replicas > 1

    def build(self):
        cfg = self.cfg
        self.model = build_simclr_model(
            cfg,
            self.data.info.num_classes if cfg.lineareval_while_pretraining else 0,
            self.data.image_shape,
            self.num_replicas,
            stop_gradient_to_head=True,
            proj_head_mode="none",
        )
        self.pretext = self.build_pretext()

    def build_pretext(self):
        """The task network (a built Keras layer)."""
        raise NotImplementedError

    def build_on(self, layer, *shapes):
        """A layer built by calling it on zeros of the given shapes (batch of 1 prepended)."""
        layer(*[tf.zeros([1, *shape]) for shape in shapes])
        return layer

    def feature_map_shape(self):
        """(h, w, c) of the ResNet's last block group on this dataset's images."""
        endpoints = self.model.encoder(
            tf.zeros([1, *self.data.image_shape]), training=False, return_endpoints=True
        )
        return tuple(endpoints["block_group4"].shape[1:])

    def checkpoint_items(self):
        return {"model": self.model, "pretext": self.pretext}

    def trainable_variables(self):
        return self.model.trainable_variables + self.pretext.trainable_variables

    def has_classifier(self):
        return self.cfg.lineareval_while_pretraining

    def plain_view(self, image, seed):
        """The crop-and-flip view each task starts from (--crop_min_area, --use_flip)."""
        return self.crop_flip_view(image, seed)

    def with_linear_eval(self, loss, metrics, features, labels):
        """Adds the linear head's cross-entropy on stop-gradient encoder features (if any)."""
        head = self.model.supervised_head
        if head is None:
            return loss, metrics
        logits = head(tf.stop_gradient(features), training=True)
        supervised_loss = cross_entropy(labels, logits)
        metrics.update(supervised_loss=supervised_loss, supervised_acc=accuracy(labels, logits))
        return loss + supervised_loss, metrics

    def figure_batch(self):
        """The first test images (eval view) and labels, for figures."""
        images, labels = next(
            iter(
                self.data.eval_batches(self.eval_view, self.figure_examples, self.cfg.eval_split, 1)
            )
        )
        return images, labels

    def figure_path(self):
        return os.path.join(self.data.run_dir, self.figure_file)
