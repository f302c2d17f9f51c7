"""SimSiam (Chen & He 2021): two views through one network; each view's prediction matches the
other view's projection, which is stop-gradiented. No negatives, no momentum encoder.

Each view is its own forward pass (encoder -> projection head -> predictor, own batch-norm
statistics), and the loss is the symmetrised negative cosine (tfssl/losses/siamese.py:
simsiam_loss). The predictor is a bottleneck MLP (hidden width a quarter of the projection's, as
the paper's 2048-512-2048). The optimizer is the paper's (SGD with momentum, cosine decay) at
solo-learn's CIFAR rate and weight decay, 0.5 per 256 images and 1e-5, with tfssl's short warmup
(the paper's 0.05 and 1e-4 are for 100+ ImageNet epochs). With --predictor_fixed_lr (on by
default, as in the authors' recommended command) the predictor stays at the peak rate: its
gradients are scaled by peak / lr(t), which for SGD with momentum is exactly a fixed rate for it
(0 at a step whose rate is 0, the first of a warmup).

The online encoder and projection head are the checkpoint item `model`, as SimCLR's.
"""

import tensorflow as tf

from tfssl.errors import ConfigError
from tfssl.losses.siamese import simsiam_loss
from tfssl.methods.siamese import SiamesePretrain


class SimSiamPretrain(SiamesePretrain):
    progress_metrics = ("loss", "simsiam_loss", "supervised_acc")
    defaults = dict(
        optimizer="momentum",
        learning_rate=0.5,
        weight_decay=1e-5,
        predictor_fixed_lr=True,
    )

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if cfg.predictor_fixed_lr and cfg.optimizer != "momentum":
            raise ConfigError(
                f"--predictor_fixed_lr needs --optimizer=momentum (with {cfg.optimizer} a gradient "
                "scale is not a learning rate); pass --nopredictor_fixed_lr"
            )

    def build(self):
        self.model = self.build_online_model()
        self.predictor = self.build_predictor(
            self.cfg.predictor_hidden_dim or max(self.projection_dim // 4, 1)
        )
        self._schedule = None

    def trainable_variables(self):
        return self.model.trainable_variables + self.predictor.trainable_variables

    def checkpoint_items(self):
        return {"model": self.model, "predictor": self.predictor}

    def batch_norm_networks(self):
        return [self.model, self.predictor]

    def learning_rate_schedule(self, peak, warmup_steps, total_steps):
        self._peak = peak
        self._schedule = super().learning_rate_schedule(peak, warmup_steps, total_steps)
        return self._schedule

    def adjust_gradients(self, grads_and_vars, learning_rate):
        """--predictor_fixed_lr: the predictor's gradients times peak / lr(t) (0 while lr is 0)."""
        if not self.cfg.predictor_fixed_lr:
            return grads_and_vars
        scale = tf.math.divide_no_nan(float(self._peak), tf.cast(learning_rate, tf.float32))
        predictor = {id(v) for v in self.predictor.trainable_variables}
        return [
            (g * tf.cast(scale, g.dtype), v) if id(v) in predictor else (g, v)
            for g, v in grads_and_vars
        ]

    def loss(self, batch):
        images, labels = batch
        online = [self.model(view, training=True) for view in self.two_views(images)]
        projections = [o["projection"] for o in online]
        predictions = [self.predictor(z, training=True) for z in projections]
        objective = simsiam_loss(predictions[0], predictions[1], projections[0], projections[1])
        supervised_loss, metrics = self.linear_eval_of_views(online, labels)
        # The paper's collapse monitor (fig. 2): the per-channel std of the unit projections is
        # about 1/sqrt(d) when they spread out and 0 when they collapse to one point.
        unit = tf.math.l2_normalize(tf.cast(projections[0], tf.float32), -1)
        metrics.update(
            simsiam_loss=objective, projection_std=tf.reduce_mean(tf.math.reduce_std(unit, 0))
        )
        return objective + supervised_loss, metrics
