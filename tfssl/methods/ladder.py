"""Ladder Networks (Rasmus et al. 2015, "Semi-supervised learning with Ladder Networks").

Each step draws a labeled and an unlabeled batch. Both go through the encoder
twice: clean, and corrupted with Gaussian noise (--ladder_noise_std) on the
input and after every batch normalisation. The decoder denoises the corrupted
path top-down, and each decoded layer l is compared with the clean path:

    loss = CE(labels, corrupted logits of the labeled batch)
           + sum_l lambda_l * C_d(l)     (--denoising_costs, input layer first)

with C_d(l) averaged over the unlabeled batch, which by default is drawn from every train image, the
labeled ones included (--unlabeled_includes_labeled), as in the reference code
(tfssl/losses/ladder.py). The clean path is the classifier that is evaluated and exported; at
inference it normalises with population statistics gathered from the clean unlabeled batches.

--ladder_model=full: the MLP 784-{--ladder_hidden_sizes}-10 with every layer decoded.
--ladder_model=gamma: the Gamma-model, only the classifier layer decoded; its encoder
is the paper's Conv-Small (or the MLP with --architecture=mlp).
All denoising costs 0 trains the same network supervised, with the same noise: the baseline.
"""

import keras
import tensorflow as tf
from keras import ops

from tfssl.config import Config
from tfssl.data import augment
from tfssl.errors import ConfigError
from tfssl.losses.ladder import denoising_cost, weighted_denoising_cost
from tfssl.losses.supervised import accuracy, cross_entropy
from tfssl.methods.base import Method
from tfssl.models.factory import build_by_calling
from tfssl.models.ladder import LadderNetwork, conv_small_layer_specs, mlp_layer_specs

#: The paper's MNIST schedule: the peak rate for the first 100 of 150 epochs, then linearly to 0.
LR_DECAY_START = 2 / 3
#: The Gamma-model's top-layer cost when --denoising_costs is left at the full MLP's default
#: (the reference code's Conv-Small Gamma-model on MNIST uses 1).
GAMMA_DEFAULT_TOP_COST = 1.0


@keras.saving.register_keras_serializable("tfssl")
class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(t) = peak for t < s = round(decay_start * total_steps), then
    lr(t) = peak * (total_steps - t) / (total_steps - s), reaching 0 at total_steps."""

    def __init__(self, peak_learning_rate, total_steps, decay_start=LR_DECAY_START):
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.decay_start = float(decay_start)

    def __call__(self, step):
        start = float(round(self.decay_start * self.total_steps))
        decay_steps = max(self.total_steps - start, 1.0)
        remaining = ops.clip((self.total_steps - ops.cast(step, "float32")) / decay_steps, 0.0, 1.0)
        return self.peak_learning_rate * remaining

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "decay_start": self.decay_start,
        }


def ladder_layer_specs(cfg, num_classes):
    """(encoder layer specs, decoder) for --ladder_model and --architecture (auto: the MLP for the
    full ladder, Conv-Small for the Gamma-model)."""
    architecture = cfg.architecture
    if architecture == "auto":
        architecture = "mlp" if cfg.ladder_model == "full" else "conv_small"
    if architecture == "mlp":
        specs = mlp_layer_specs(
            [int(n) for n in cfg.float_list("ladder_hidden_sizes")], num_classes
        )
    elif architecture == "conv_small" and cfg.ladder_model == "gamma":
        specs = conv_small_layer_specs(num_classes)
    else:
        raise ConfigError(
            f"--mode=ladder supports --architecture=auto or mlp, not {cfg.architecture} "
            "(auto: the MLP for --ladder_model=full, the paper's Conv-Small for gamma)"
        )
    return specs, "full" if cfg.ladder_model == "full" else "top"


def denoising_weights(cfg, num_layers):
    """{layer: lambda_l} for the layers with a positive cost (0 = the input, num_layers = the
    classifier)."""
    values = cfg.float_list("denoising_costs")
    if cfg.ladder_model == "gamma":
        default = Config.__dataclass_fields__["denoising_costs"].default
        top = (
            GAMMA_DEFAULT_TOP_COST
            if cfg.denoising_costs == default
            else (values[-1] if values else 0.0)
        )
        return {num_layers: top} if top > 0 else {}
    if len(values) != num_layers + 1:
        raise ConfigError(
            f"--denoising_costs has {len(values)} values but the ladder has "
            f"{num_layers + 1} layers "
            f"(the input, {num_layers - 1} hidden from --ladder_hidden_sizes, the classifier)"
        )
    if any(v < 0 for v in values):
        raise ConfigError(f"--denoising_costs={cfg.denoising_costs} must not be negative")
    return {layer: value for layer, value in enumerate(values) if value > 0}


def layer_costs(model, clean, corrupted, lowest_layer=0):
    """{layer: C_d(layer)} for the layers the decoder estimates, from the top down to
    lowest_layer."""
    estimates = model.decode(corrupted, lowest_layer)
    return {
        layer: denoising_cost(clean.z[layer], estimate, clean.mean[layer], clean.variance[layer])
        for layer, estimate in estimates.items()
    }


class Ladder(Method):
    job = "ladder"
    progress_metrics = ("loss", "supervised_loss", "supervised_acc", "denoising_cost")
    architectures = ("auto", "mlp")
    # 60 epochs of 600 steps: 1.01% error on MNIST with 100 labels, 27 min on 2 cores.
    defaults = dict(
        optimizer="adam",
        learning_rate=0.002,
        learning_rate_scaling="constant",
        lr_schedule="constant",
        weight_decay=0.0,
        warmup_epochs=0.0,
        train_batch_size=100,
        architecture="auto",
        batch_norm_decay=0.99,
        unlabeled_includes_labeled=True,
        random_translate=0,
        train_steps=36000,
        checkpoint_steps=3000,
    )

    @property
    def uses_unlabeled(self):
        return True

    def build(self):
        cfg = self.cfg
        specs, decoder = ladder_layer_specs(cfg, self.data.info.num_classes)
        self.denoising_weights = denoising_weights(cfg, len(specs))
        # --precision applies to the matrix products only; the rest stays float32 (normalisation eps
        # 1e-10).
        model = LadderNetwork(
            specs,
            decoder,
            bn_momentum=cfg.batch_norm_decay,
            synchronized=cfg.global_bn and self.num_replicas > 1,
            matmul_dtype=cfg.precision,
            dtype="float32",
            name="ladder",
        )
        self.model = build_by_calling(model, self.data.image_shape)

    def learning_rate_schedule(self, peak, warmup_steps, total_steps):
        """The paper's schedule (ConstantThenLinearDecay), unless --lr_schedule=cosine."""
        if self.cfg.lr_schedule == "cosine":
            return super().learning_rate_schedule(peak, warmup_steps, total_steps)
        return ConstantThenLinearDecay(peak, total_steps)

    def view(self, image, seed):
        image = augment.eval_view(image, self.data.image_size)
        if self.cfg.random_translate:
            image = augment.random_translation(
                image, self.cfg.random_translate, seed, self.cfg.translate_fill
            )
        return image

    def train_dataset(self, input_context, start_step):
        cfg = self.cfg
        labeled = self.data.train_batches(
            self.view, cfg.train_batch_size, "labeled", input_context, start_step
        )
        unlabeled = self.data.train_batches(
            self.view,
            self.unlabeled_batch_size,
            self.unlabeled_part,
            input_context,
            start_step,
            stream=1,
        )
        return tf.data.Dataset.zip(labeled, unlabeled)

    def loss(self, batch):
        (labeled_images, labels), (unlabeled_images, _) = batch
        noise_std = self.cfg.ladder_noise_std
        corrupted_labeled = self.model.encode(labeled_images, noise_std, training=True)
        supervised_loss = cross_entropy(labels, corrupted_labeled.logits, self.class_weights)
        metrics = {
            "supervised_loss": supervised_loss,
            "supervised_acc": accuracy(labels, corrupted_labeled.logits),
        }
        # The clean unlabeled batch gives the population statistics used at inference.
        clean_unlabeled = self.model.encode(unlabeled_images, training=True, update_population=True)
        if not self.denoising_weights:
            return supervised_loss, metrics
        corrupted_unlabeled = self.model.encode(unlabeled_images, noise_std, training=True)
        costs = layer_costs(
            self.model, clean_unlabeled, corrupted_unlabeled, min(self.denoising_weights)
        )
        total_denoising = weighted_denoising_cost(
            {layer: cost for layer, cost in costs.items() if layer in self.denoising_weights},
            self.denoising_weights,
        )
        metrics.update(
            {f"denoising_cost_{layer}": cost for layer, cost in costs.items()},
            denoising_cost=total_denoising,
        )
        return supervised_loss + total_denoising, metrics

    def summary_images(self, batch):
        return batch[1][0][:8]

    def export_outputs(self, images, training=False):
        """The clean path: 'logits' and 'features' (the classifier's input, flattened)."""
        return self.model(images, training=training)
