"""Context encoders (Pathak et al. 2016): inpaint a masked region of the image.

The encoder sees the image with its central square (--mask_mode=center) or random blocks
(--mask_mode=random), a quarter of it either way, filled with gray; a convolutional decoder from
its last feature map reconstructs the image, and the L2 loss counts the masked pixels only. With
--adversarial_weight > 0 a small discriminator tells real images from completed ones (the
reconstruction pasted into the hole), and the encoder-decoder also minimises -log D(completed)
times that weight, as the paper's joint loss (0.001 there).
"""

import tensorflow as tf

from tfssl.data import augment
from tfssl.data.pretext import apply_mask, center_mask, random_block_mask
from tfssl.losses.pretext import discriminator_loss, generator_loss, masked_l2
from tfssl.methods.pretext import PretextTask
from tfssl.models.pretext import ConvDecoder, Discriminator


class ContextEncoderPretrain(PretextTask):
    progress_metrics = ("loss", "reconstruction_loss", "supervised_acc")
    defaults = dict(PretextTask.defaults, optimizer="adam", learning_rate=1e-3, weight_decay=0.0)
    figure_file = "inpainting.png"

    def build_pretext(self):
        height, _, channels = self.feature_map_shape()
        decoder = ConvDecoder(
            self.data.image_size,
            height,
            channels,
            self.data.info.channels,
            self.cfg.batch_norm_decay,
            self.synchronized,
            name="decoder",
        )
        self.build_on(decoder, self.feature_map_shape())
        self.discriminator = None
        if self.cfg.adversarial_weight:
            self.discriminator = self.build_on(
                Discriminator(name="discriminator"), self.data.image_shape
            )
        return decoder

    def checkpoint_items(self):
        items = super().checkpoint_items()
        if self.discriminator is not None:
            items["discriminator"] = self.discriminator
        return items

    def trainable_variables(self):
        extra = self.discriminator.trainable_variables if self.discriminator is not None else []
        return super().trainable_variables() + extra

    def mask(self, seed):
        size = self.data.image_size
        if self.cfg.mask_mode == "center":
            return center_mask(size)
        return random_block_mask(size, seed)

    def train_dataset(self, input_context, start_step):
        def view(image, seed):
            view_seed, mask_seed = augment.split_seed(seed, 2)
            return {"image": self.plain_view(image, view_seed), "mask": self.mask(mask_seed)}

        return self.data.train_batches(
            view, self.cfg.train_batch_size, "all", input_context, start_step
        )

    def reconstruct(self, images, masks, training, clean=False):
        """(reconstructions in [0, 1], the encoder's pooled features of the clean images if
        `clean`)."""
        masked = apply_mask(images, masks)
        inputs = tf.concat([masked, images], 0) if clean else masked
        endpoints = self.model.encoder(inputs, training=training, return_endpoints=True)
        count = tf.shape(images)[0]
        decoded = self.pretext(endpoints["block_group4"][:count], training=training)
        pooled = endpoints["final_avg_pool"][count:] if clean else None
        return tf.sigmoid(tf.cast(decoded, tf.float32)), pooled

    def loss(self, batch):
        inputs, labels = batch
        images, masks = inputs["image"], inputs["mask"]
        clean = self.model.supervised_head is not None
        reconstruction, pooled = self.reconstruct(images, masks, True, clean)
        loss = masked_l2(reconstruction, images, masks)
        metrics = {"pretext_loss": loss, "reconstruction_loss": loss}
        if self.discriminator is not None:
            completed = images * (1 - masks) + reconstruction * masks
            critic = self.discriminator
            real_logits = critic(images)
            fake_logits = critic(tf.stop_gradient(completed))
            # the generator's term through a frozen copy of the critic's weights
            frozen = [tf.stop_gradient(v) for v in critic.trainable_variables]
            fooled_logits, _ = critic.stateless_call(frozen, [], completed)
            adversarial = generator_loss(fooled_logits)
            critic_loss = discriminator_loss(real_logits, fake_logits)
            loss += self.cfg.adversarial_weight * adversarial + critic_loss
            metrics.update(adversarial_loss=adversarial, discriminator_loss=critic_loss)
        if pooled is None:
            return loss, metrics
        return self.with_linear_eval(loss, metrics, pooled, labels)

    def summary_images(self, batch):
        images, masks = batch[0]["image"][:8], batch[0]["mask"][:8]
        return tf.concat([apply_mask(images, masks), images], axis=2)

    def write_figures(self):
        from tfssl import plots_pretext

        images, _ = self.figure_batch()
        seeds = [tf.constant([self.cfg.seed, 2000 + i], tf.int64) for i in range(len(images))]
        masks = tf.stack([self.mask(seed) for seed in seeds])
        reconstruction, _ = self.reconstruct(images, masks, False)
        completed = images * (1 - masks) + reconstruction * masks
        plots_pretext.image_rows(
            self.figure_path(),
            [
                ("masked", apply_mask(images, masks).numpy()),
                ("reconstructed", completed.numpy()),
                ("original", images.numpy()),
            ],
            f"Context encoder ({self.cfg.mask_mode} mask): the masked region inpainted",
        )
