"""BYOL (Grill et al. 2020): the online network predicts the target network's projection of the
other view; the target is an exponential moving average of the online network.

Each step encodes both views with the online network (encoder -> projection head -> predictor)
and with the target (encoder -> projection head, no gradient), and minimises the symmetrised
normalised MSE (tfssl/losses/siamese.py: byol_loss). After the optimizer step the target's
parameters move toward the online ones with tau_k = 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2,
tau_base = --target_decay (0.996), rising to 1 at the last step. Each view is its own forward
pass (its own batch-norm statistics), as in the paper. The target starts as a copy of the online
network and keeps its own batch-norm statistics.

The online encoder and projection head are the checkpoint item `model`, as SimCLR's, so
fine-tuning, distillation, eval and export take a BYOL run as they take a SimCLR run. The
optimizer defaults are SimCLR's (LARS, linear warmup and cosine decay, as in the paper) with the
paper's weight decay.
"""

import tensorflow as tf

from tfssl.losses.siamese import byol_loss, byol_tau
from tfssl.methods.siamese import SiamesePretrain


class BYOLPretrain(SiamesePretrain):
    progress_metrics = ("loss", "byol_loss", "supervised_acc")
    defaults = dict(weight_decay=1.5e-6)

    def build(self):
        cfg = self.cfg
        self.model = self.build_online_model()
        self.predictor = self.build_predictor(cfg.predictor_hidden_dim or 4 * self.projection_dim)
        self.target = self.build_target_model()

    def trainable_variables(self):
        return self.model.trainable_variables + self.predictor.trainable_variables

    def checkpoint_items(self):
        return {"model": self.model, "predictor": self.predictor, "target": self.target}

    def batch_norm_networks(self):
        return [self.model, self.predictor, self.target]

    def target_decay(self):
        """tau for the update after the current step (self.step: 0 at the first)."""
        return byol_tau(self.step, self.total_steps, self.cfg.target_decay)

    def loss(self, batch):
        images, labels = batch
        views = self.two_views(images)
        online = [self.model(view, training=True) for view in views]
        predictions = [self.predictor(o["projection"], training=True) for o in online]
        targets = [tf.stop_gradient(self.target(v, training=True)["projection"]) for v in views]
        objective = byol_loss(predictions[0], predictions[1], targets[0], targets[1])
        supervised_loss, metrics = self.linear_eval_of_views(online, labels)
        metrics.update(byol_loss=objective, target_decay=self.target_decay())
        return objective + supervised_loss, metrics

    @tf.autograph.experimental.do_not_convert
    def after_update(self):
        self.momentum_update(self.target_decay())
