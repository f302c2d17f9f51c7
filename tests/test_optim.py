"""LARS, learning-rate scaling and the warmup + cosine schedule against numpy formulas."""

import math

import keras
import numpy as np
import pytest

from tfssl.train import optim


class TwoVariables(keras.layers.Layer):
    """A hand-built layer: one kernel (adapted, decayed) and one bias (excluded by path)."""

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(3,), initializer=keras.initializers.Constant([1.0, -2.0, 0.5]), name="kernel"
        )
        self.bias = self.add_weight(
            shape=(2,), initializer=keras.initializers.Constant([0.3, 0.1]), name="bias"
        )


def numpy_lars_step(w, g, v, lr, momentum, weight_decay, eeta, nesterov, excluded):
    if not excluded:
        g = g + weight_decay * w
        w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
        trust = eeta * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0
    else:
        trust = 1.0
    v_next = momentum * v + lr * trust * g
    update = momentum * v_next + lr * trust * g if nesterov else v_next
    return w - update, v_next


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_two_steps_match_numpy(nesterov):
    layer = TwoVariables(name="toy")
    layer.build(None)
    variables = [layer.kernel, layer.bias]
    lr, momentum, wd, eeta = 0.5, 0.9, 0.01, 0.001
    opt = optim.LARS(lr, momentum=momentum, weight_decay_rate=wd, eeta=eeta, nesterov=nesterov)
    opt.build(variables)
    grads = [np.array([0.2, -0.1, 0.4], np.float32), np.array([1.0, -3.0], np.float32)]
    expected = [(v.numpy().astype(np.float64), np.zeros(v.shape)) for v in variables]
    for _ in range(2):
        opt.apply_gradients(zip(grads, variables))
        expected = [
            numpy_lars_step(w, g, m, lr, momentum, wd, eeta, nesterov, excluded=(i == 1))
            for i, ((w, m), g) in enumerate(zip(expected, grads))
        ]
    for variable, (w, _) in zip(variables, expected):
        np.testing.assert_allclose(variable.numpy(), w, rtol=1e-5)


def test_exclusion_is_by_path():
    layer = keras.layers.BatchNormalization()
    dense = keras.layers.Dense(2, name="head_supervised")
    other = keras.layers.Dense(2, name="proj")
    for each in (layer, dense, other):
        each.build((None, 3))
    excluded = {
        v.path: optim.excluded_from_weight_decay(v)
        for each in (layer, dense, other)
        for v in each.variables
    }
    assert all(
        excluded[p] for p in excluded if "batch_normalization" in p or "head_supervised" in p
    )
    assert excluded["proj/bias"] and not excluded["proj/kernel"]


def test_learning_rate_scaling():
    assert optim.scaled_learning_rate(0.3, 512, "linear") == pytest.approx(0.6)
    assert optim.scaled_learning_rate(0.075, 4096, "sqrt") == pytest.approx(0.075 * 64)
    assert optim.scaled_learning_rate(0.003, 100, "constant") == 0.003


def test_warmup_cosine_schedule():
    peak, warmup, total = 2.0, 10, 110
    schedule = optim.WarmupCosineDecay(peak, warmup, total)
    for step in (0, 5, 10, 35, 60, 109, 110, 200):
        if step < warmup:
            expected = peak * step / warmup
        else:
            expected = peak * 0.5 * (1 + math.cos(math.pi * min(step - warmup, 100) / 100))
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-6)
    assert float(optim.WarmupCosineDecay(1.0, 0, 10)(0)) == pytest.approx(1.0)


def test_l2_weight_decay_selection():
    dense = keras.layers.Dense(2, name="head_supervised", kernel_initializer="ones")
    proj = keras.layers.Dense(2, name="proj", kernel_initializer="ones", bias_initializer="ones")
    bn = keras.layers.BatchNormalization()
    for each in (dense, proj, bn):
        each.build((None, 3))
    variables = dense.variables + proj.variables + bn.trainable_variables
    # LARS decays everything itself except the supervised head's kernel: 1e-2 * 6 / 2
    assert float(optim.l2_weight_decay(variables, 1e-2, "lars")) == pytest.approx(0.03)
    # other optimizers: every non-BN variable (6 + 6 + 2 ones, the zero bias adds nothing)
    assert float(optim.l2_weight_decay(variables, 1e-2, "momentum")) == pytest.approx(1e-2 * 14 / 2)
