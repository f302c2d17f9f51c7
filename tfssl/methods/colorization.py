"""Colorization (Zhang et al. 2016): predict an image's colours (ab in CIE Lab) from its lightness.

The encoder sees L as a gray image; a convolutional decoder from its last feature map predicts, per
pixel, a distribution over the quantised in-gamut ab bins (grid 10), trained with cross-entropy
against soft-encoded targets (5 nearest bins, Gaussian sigma 5) and class rebalancing (weights from
the training images' smoothed bin frequencies, mixed half and half with uniform). Colours are read
out as the annealed mean (T = 0.38). --colorization_loss=l2 regresses ab directly instead.

Colour datasets only. Linear evaluation while pretraining (and the exported pretraining model)
reads the same gray input; fine-tuning gives the encoder the colour images.
"""

import logging

import numpy as np
import tensorflow as tf

from tfssl.data import lab
from tfssl.errors import DataError
from tfssl.losses.pretext import rebalanced_soft_cross_entropy
from tfssl.losses.supervised import accuracy
from tfssl.methods.pretext import PretextTask
from tfssl.models.pretext import ConvDecoder

log = logging.getLogger("tfssl")

AB_SCALE = 110.0  # |a|, |b| of sRGB colours stay below this
PRIOR_IMAGES = 2000  # training images the bin frequencies are counted on


class ColorizationPretrain(PretextTask):
    defaults = dict(PretextTask.defaults, optimizer="adam", learning_rate=1e-3, weight_decay=0.0)
    figure_file = "colorization.png"

    def __init__(self, cfg, data, num_replicas=1):
        if data.info.channels != 3:
            raise DataError(
                f"--ssl_method=colorization needs colour images; {cfg.dataset} has "
                f"{data.info.channels} channel(s): use another --ssl_method or a colour dataset"
            )
        super().__init__(cfg, data, num_replicas)
        self.classify = cfg.colorization_loss == "classification"
        self.bins = lab.ab_bins()

    def build_pretext(self):
        height, _, channels = self.feature_map_shape()
        outputs = len(self.bins) if self.classify else 2
        decoder = ConvDecoder(
            self.data.image_size,
            height,
            channels,
            outputs,
            self.cfg.batch_norm_decay,
            self.synchronized,
            name="decoder",
        )
        self.build_on(decoder, self.feature_map_shape())
        self.rebalancing = tf.Variable(
            tf.ones([len(self.bins)]), trainable=False, name="rebalancing_weights"
        )
        return decoder

    def checkpoint_items(self):
        return {**super().checkpoint_items(), "rebalancing": self.rebalancing}

    def initialize(self):
        """Class-rebalancing weights from the bin frequencies of the first training images."""
        if not self.classify:
            return
        counts = np.zeros(len(self.bins))
        for images, _ in self.data.eval_batches(
            self.eval_view, 250, self.cfg.train_split, -(-PRIOR_IMAGES // 250)
        ):
            ab = lab.rgb_to_lab(images)[..., 1:]
            nearest = lab.nearest_bin(tf.reshape(ab, [-1, 2]), self.bins)
            counts += np.bincount(nearest.numpy(), minlength=len(self.bins))
        self.rebalancing.assign(lab.rebalancing_weights(counts, self.bins))
        used = int(np.sum(counts > 0))
        log.info("colorization: %d of %d ab bins occur in the training images", used, len(counts))

    def gray(self, images):
        """The encoder's input: the images' lightness as a gray image."""
        return lab.luminance_input(lab.rgb_to_lab(images), images.shape[-1])

    def train_dataset(self, input_context, start_step):
        def view(image, seed):
            image = self.plain_view(image, seed)
            colour = lab.rgb_to_lab(image)
            example = {"gray": lab.luminance_input(colour), "ab": colour[..., 1:], "image": image}
            if self.classify:
                example["bins"], example["bin_weights"] = lab.soft_encode(
                    colour[..., 1:], self.bins
                )
            return example

        return self.data.train_batches(
            view, self.cfg.train_batch_size, "all", input_context, start_step
        )

    def decode(self, gray, training):
        """(decoder outputs (B, S, S, Q or 2), the encoder's pooled features)."""
        endpoints = self.model.encoder(gray, training=training, return_endpoints=True)
        outputs = self.pretext(endpoints["block_group4"], training=training)
        return tf.cast(outputs, tf.float32), endpoints["final_avg_pool"]

    def loss(self, batch):
        inputs, labels = batch
        outputs, features = self.decode(inputs["gray"], True)
        if self.classify:
            nearest = inputs["bins"][..., 0]
            pixel_weights = tf.gather(self.rebalancing, nearest)
            loss = rebalanced_soft_cross_entropy(
                outputs, inputs["bins"], inputs["bin_weights"], pixel_weights
            )
            pixel_acc = accuracy(
                tf.reshape(nearest, [-1]), tf.reshape(outputs, [-1, len(self.bins)])
            )
            metrics = {"pretext_loss": loss, "pretext_acc": pixel_acc}
        else:
            error = tf.tanh(outputs) - inputs["ab"] / AB_SCALE
            loss = tf.reduce_mean(tf.square(error))
            metrics = {"pretext_loss": loss}
        return self.with_linear_eval(loss, metrics, features, labels)

    def predicted_ab(self, images):
        outputs, _ = self.decode(self.gray(images), False)
        if self.classify:
            return lab.annealed_mean(outputs, self.bins)
        return AB_SCALE * tf.tanh(outputs)

    def eval_logits(self, images):
        return self.model(self.gray(images), training=False)["logits"]

    def export_outputs(self, images, training=False):
        return super().export_outputs(self.gray(images), training)

    def summary_images(self, batch):
        return tf.concat([batch[0]["gray"][:8], batch[0]["image"][:8]], axis=2)

    def write_figures(self):
        from tfssl import plots_pretext

        images, _ = self.figure_batch()
        colour = lab.rgb_to_lab(images)
        predicted = lab.lab_to_rgb(tf.concat([colour[..., :1], self.predicted_ab(images)], -1))
        plots_pretext.image_rows(
            self.figure_path(),
            [
                ("input (L)", self.gray(images).numpy()),
                ("colourised", predicted.numpy()),
                ("original", images.numpy()),
            ],
            f"Colorization ({self.cfg.colorization_loss}): colours predicted from lightness",
        )
