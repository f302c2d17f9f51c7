"""Masked autoencoders (He et al. 2022): a ViT encoder sees a random quarter of the patches
(--mask_ratio=0.75 removed), a light decoder puts mask tokens in the removed places and predicts
every patch's pixels, and the loss counts the removed patches only, each target patch normalised
to mean 0 and variance 1 (--norm_pix_loss). Fine-tuning puts a linear head on the ViT's
mean-pooled tokens."""

import numpy as np
import tensorflow as tf

from tfssl.data import augment
from tfssl.data.pretext import patchify, random_masking, unpatchify
from tfssl.errors import ConfigError
from tfssl.losses.pretext import mae_loss
from tfssl.methods.pretext import PretextTask
from tfssl.models.vit import MAEDecoder


class MAEPretrain(PretextTask):
    progress_metrics = ("loss", "reconstruction_loss", "supervised_acc")
    architectures = ("vit",)
    defaults = dict(
        PretextTask.defaults,
        architecture="vit",
        optimizer="adam",
        learning_rate=1.5e-3,
        weight_decay=0.0,
        warmup_epochs=1.0,
    )
    figure_file = "mae_reconstructions.png"

    @classmethod
    def validate_config(cls, cfg):
        if cfg.architecture != "vit":
            raise ConfigError(
                f"--ssl_method=mae trains a ViT; drop --architecture={cfg.architecture}"
            )
        super().validate_config(cfg)

    def build_pretext(self):
        cfg = self.cfg
        decoder = MAEDecoder(
            self.data.image_size,
            cfg.vit_patch_size,
            self.data.info.channels,
            cfg.mae_decoder_depth,
            cfg.mae_decoder_width,
            max(cfg.mae_decoder_width // 32, 1),
            name="decoder",
        )
        num_patches = self.model.encoder.num_patches
        decoder(
            tf.zeros([1, num_patches, self.model.encoder.num_features]),
            tf.range(num_patches)[None],
        )
        return decoder

    def train_dataset(self, input_context, start_step):
        num_patches = self.model.encoder.num_patches

        def view(image, seed):
            view_seed, noise_seed = augment.split_seed(seed, 2)
            noise = tf.random.stateless_uniform([num_patches], noise_seed)
            return {"image": self.plain_view(image, view_seed), "noise": noise}

        return self.data.train_batches(
            view, self.cfg.train_batch_size, "all", input_context, start_step
        )

    def predict_patches(self, images, noise, training):
        """(predicted patches (B, N, D), mask (B, N)) for images masked by `noise`."""
        keep, mask, restore = random_masking(noise, self.cfg.mask_ratio)
        tokens = self.model.encoder(
            images, training=training, return_endpoints=True, keep_indices=keep
        )["tokens"]
        return tf.cast(self.pretext(tokens, restore), tf.float32), mask

    def loss(self, batch):
        inputs, labels = batch
        images = inputs["image"]
        prediction, mask = self.predict_patches(images, inputs["noise"], True)
        target = patchify(images, self.cfg.vit_patch_size)
        loss = mae_loss(prediction, target, mask, self.cfg.norm_pix_loss)
        metrics = {"pretext_loss": loss, "reconstruction_loss": loss}
        if self.model.supervised_head is None:
            return loss, metrics
        features = self.model.encoder(images, training=True)
        return self.with_linear_eval(loss, metrics, features, labels)

    def summary_images(self, batch):
        return batch[0]["image"][:8]

    def write_figures(self):
        from tfssl import plots_pretext

        cfg, size, channels = self.cfg, self.data.image_size, self.data.info.channels
        images, _ = self.figure_batch()
        noise = tf.random.stateless_uniform(
            [len(images), self.model.encoder.num_patches], [cfg.seed, 3000]
        )
        prediction, mask = self.predict_patches(images, noise, False)
        target = patchify(images, cfg.vit_patch_size)
        removed = mask[..., None]
        title = "MAE: removed patches predicted from the visible ones"
        if cfg.norm_pix_loss:  # predictions are per-patch normalised: shown at the visible
            # patches' mean and spread (not the removed patches' own, which would be a leak)
            visible = 1 - removed
            count = tf.reduce_sum(visible, [1, 2], keepdims=True) * target.shape[-1]
            mean = tf.reduce_sum(target * visible, [1, 2], keepdims=True) / count
            spread = tf.reduce_sum(tf.square(target - mean) * visible, [1, 2], keepdims=True)
            prediction = prediction * tf.sqrt(spread / count) + mean
            title += " (normalised patches shown at the visible patches' mean and spread)"
        masked = target * (1 - removed) + 0.5 * removed
        pasted = target * (1 - removed) + prediction * removed

        def as_images(patches):
            return np.clip(unpatchify(patches, cfg.vit_patch_size, size, channels).numpy(), 0, 1)

        plots_pretext.image_rows(
            self.figure_path(),
            [
                (f"masked ({cfg.mask_ratio:.0%})", as_images(masked)),
                ("reconstructed", as_images(pasted)),
                ("original", images.numpy()),
            ],
            title,
        )
