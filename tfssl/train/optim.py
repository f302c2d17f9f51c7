"""LARS, the warmup + cosine learning-rate schedule, and the optimizer factory."""

import math
import re

import keras
from keras import ops

# Variables with these in their path get no weight decay and no LARS adaptation.
EXCLUDE_FROM_WEIGHT_DECAY = ("batch_normalization", "bias", "head_supervised")


def excluded_from_weight_decay(variable, patterns=EXCLUDE_FROM_WEIGHT_DECAY):
    return any(re.search(p, variable.path) for p in patterns)


@keras.saving.register_keras_serializable("tfssl")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise adaptive rate scaling (You et al. 2017), as in the official SimCLR code.

    Per variable w with gradient g, for variables not excluded by path:
        g' = g + weight_decay * w
        trust = eeta * ||w|| / ||g'||   (1 if either norm is 0, or if excluded)
        v <- momentum * v + lr * trust * g'
        w <- w - (momentum * v + lr * trust * g' if nesterov else v)
    Excluded variables (batch norm, biases, the supervised head) use g' = g
    and trust = 1.
    """

    def __init__(
        self,
        learning_rate=0.001,
        momentum=0.9,
        weight_decay_rate=0.0,
        eeta=0.001,
        nesterov=False,
        exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
        name="lars",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum
        self.weight_decay_rate = weight_decay_rate
        self.eeta = eeta
        self.nesterov = nesterov
        self.exclude_patterns = tuple(exclude_from_weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")
        self._excluded = {
            i
            for i, v in enumerate(variables)
            if excluded_from_weight_decay(v, self.exclude_patterns)
        }

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        velocity = self.velocities[index]
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if index not in self._excluded:
            if self.weight_decay_rate:
                gradient = gradient + self.weight_decay_rate * variable
            weight_norm = ops.norm(ops.reshape(variable, [-1]))
            grad_norm = ops.norm(ops.reshape(gradient, [-1]))
            trust = ops.where(
                ops.logical_and(weight_norm > 0, grad_norm > 0),
                self.eeta * weight_norm / ops.maximum(grad_norm, 1e-30),
                1.0,
            )
            learning_rate = learning_rate * trust
        scaled_gradient = learning_rate * gradient
        next_velocity = self.momentum * velocity + scaled_gradient
        self.assign(velocity, next_velocity)
        step = self.momentum * next_velocity + scaled_gradient if self.nesterov else next_velocity
        self.assign_sub(variable, step)

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "weight_decay_rate": self.weight_decay_rate,
            "eeta": self.eeta,
            "nesterov": self.nesterov,
            "exclude_from_weight_decay": self.exclude_patterns,
        }


def scaled_learning_rate(base_learning_rate, batch_size, scaling="linear"):
    """The official scaling: base * batch / 256 (linear) or base * sqrt(batch) (sqrt); or none
    (constant)."""
    if scaling == "constant":
        return base_learning_rate
    if scaling == "linear":
        return base_learning_rate * batch_size / 256.0
    if scaling == "sqrt":
        return base_learning_rate * math.sqrt(batch_size)
    raise ValueError(f"unknown learning_rate_scaling {scaling!r}")


@keras.saving.register_keras_serializable("tfssl")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to peak over warmup_steps, then cosine decay to 0 at total_steps.

    lr(t) = peak * t / warmup                                   t < warmup
    lr(t) = peak * 0.5 * (1 + cos(pi * min(t - warmup, D) / D))  otherwise, D = total - warmup
    """

    def __init__(self, peak_learning_rate, warmup_steps, total_steps):
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        warmup = float(self.warmup_steps)
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.minimum(ops.maximum(step - warmup, 0.0), decay_steps) / decay_steps
        cosine = peak * 0.5 * (1.0 + ops.cos(math.pi * progress))
        if not self.warmup_steps:
            return cosine
        return ops.where(step < warmup, peak * step / warmup, cosine)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }


@keras.saving.register_keras_serializable("tfssl")
class FixMatchCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """FixMatch's decay (Sohn et al. 2020), after an optional linear warmup:

    lr(t) = peak * t / warmup                                    t < warmup
    lr(t) = peak * cos(7 pi min(t - warmup, D) / (16 D))          otherwise, D = total - warmup

    It ends at peak * cos(7 pi / 16), about 0.2 peak, rather than at 0.
    """

    def __init__(self, peak_learning_rate, warmup_steps, total_steps):
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(self.warmup_steps)
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.minimum(ops.maximum(step - warmup, 0.0), decay_steps) / decay_steps
        decayed = self.peak_learning_rate * ops.cos(7.0 * math.pi * progress / 16.0)
        if not self.warmup_steps:
            return decayed
        return ops.where(step < warmup, self.peak_learning_rate * step / warmup, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }


SCHEDULES = {"cosine": WarmupCosineDecay, "fixmatch_cosine": FixMatchCosineDecay}


def build_optimizer(name, learning_rate, momentum=0.9, weight_decay=0.0):
    """lars | momentum (Nesterov SGD) | adam. Weight decay is inside LARS; other optimizers get
    it as an L2 loss from the trainer (as in the official code)."""
    if name == "lars":
        return LARS(learning_rate, momentum=momentum, weight_decay_rate=weight_decay)
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=True)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    raise ValueError(f"unknown optimizer {name!r}")


def l2_weight_decay(variables, weight_decay, optimizer_name):
    """The official weight-decay loss: weight_decay * sum(||w||^2 / 2).

    With LARS (which decays the rest itself) only the supervised head's kernels;
    with other optimizers every variable except batch norm.
    """
    if not weight_decay:
        return 0.0
    if optimizer_name == "lars":
        chosen = [v for v in variables if "head_supervised" in v.path and "bias" not in v.path]
    else:
        chosen = [v for v in variables if "batch_normalization" not in v.path]
    if not chosen:
        return 0.0
    return weight_decay * ops.sum(
        ops.stack([0.5 * ops.sum(ops.square(ops.cast(v, "float32"))) for v in chosen])
    )
