"""What BYOL, SimSiam and MoCo share beside SimCLR: the two SimCLR views, the online network
(encoder + projection head + the linear-eval head, as SimCLR's, so that fine-tuning, distillation,
eval and export take it as they take SimCLR's), a predictor, and a momentum (EMA) copy of the
online encoder and projection head.
"""

import tensorflow as tf

from tfssl.losses.consistency import ema_update
from tfssl.methods.simclr import SimCLRPretrain
from tfssl.models.factory import build_by_calling, build_simclr_model
from tfssl.models.heads import PredictionHead


class SiamesePretrain(SimCLRPretrain):
    """Base of the objectives whose two branches are an online network and a target."""

    def build_target_model(self):
        """A copy of the online encoder and projection head (no linear head), starting equal to it;
        its parameters follow the online ones through momentum_update()."""
        target = build_simclr_model(
            self.cfg, 0, self.data.image_shape, self.num_replicas, stop_gradient_to_head=True
        )
        online = self.model.encoder.variables + self.model.projection_head.variables
        copy = target.encoder.variables + target.projection_head.variables
        for target_var, online_var in zip(copy, online, strict=True):
            if target_var.shape != online_var.shape:
                raise ValueError(f"target {target_var.path} and {online_var.path} do not pair up")
            target_var.assign(online_var)  # a fresh target is the online network; resume restores
        self.momentum_pairs = [
            (t, o) for t, o in zip(copy, online) if o.trainable
        ]  # parameters only: the target keeps its own batch-norm statistics, as in both papers
        return target

    @property
    def projection_dim(self):
        """Width of the online projection (the encoder's with --proj_head_mode=none)."""
        if self.cfg.proj_head_mode == "none":
            return self.model.encoder.num_features
        return self.cfg.proj_out_dim

    def build_predictor(self, hidden_dim):
        """The predictor MLP, from the projection back to the projection's width."""
        cfg = self.cfg
        predictor = PredictionHead(
            hidden_dim,
            self.projection_dim,
            bn_momentum=cfg.batch_norm_decay,
            synchronized=cfg.global_bn and self.num_replicas > 1,
            name="predictor",
        )
        return build_by_calling(predictor, (self.projection_dim,))

    def momentum_update(self, decay):
        """target <- decay * target + (1 - decay) * online, for parameters. Called from
        after_update (cross-replica context), where an assignment reaches every replica's copy."""
        for target_var, online_var in self.momentum_pairs:
            target_var.assign(ema_update(target_var, tf.cast(online_var, target_var.dtype), decay))

    def linear_eval_of_views(self, outputs, labels):
        """linear_eval_loss averaged over the online outputs of several views of one batch."""
        loss, metrics = 0.0, {}
        for view_outputs in outputs:
            view_loss, view_metrics = self.linear_eval_loss(view_outputs, labels)
            loss += view_loss / len(outputs)
            for name, value in view_metrics.items():
                metrics[name] = metrics.get(name, 0.0) + value / len(outputs)
        return loss, metrics

    def two_views(self, images):
        """The batch's two augmented views, each (n, H, W, C)."""
        return tf.split(images, 2, axis=-1)

    @property
    def total_steps(self):
        from tfssl.train.trainer import total_train_steps

        return total_train_steps(self.cfg, self.examples_per_epoch)
