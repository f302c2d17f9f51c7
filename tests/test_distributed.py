"""Two replicas (2 logical CPUs under MirroredStrategy) against one, on the same global batch."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_config
from tfssl.losses.contrastive import nt_xent
from tfssl.train import runtime
from tfssl.train.distribute import make_strategy


def two_replicas():
    return make_strategy("mirrored")  # the two logical CPUs of conftest


def test_nt_xent_loss_and_gradients_match_across_replica_counts():
    rng = np.random.default_rng(0)
    x1 = tf.constant(rng.normal(size=(8, 6)), tf.float32)
    x2 = tf.constant(rng.normal(size=(8, 6)), tf.float32)
    init = rng.normal(size=(6, 5)).astype(np.float32)

    def loss_and_grad(weights, a, b, num_replicas):
        with tf.GradientTape() as tape:
            loss, _, _ = nt_xent(tf.matmul(a, weights), tf.matmul(b, weights), 0.5, True)
            scaled = loss / num_replicas
        return scaled, tape.gradient(scaled, weights)

    single_weights = tf.Variable(init)
    single_loss, single_grad = loss_and_grad(single_weights, x1, x2, 1)

    strategy = two_replicas()
    with strategy.scope():
        weights = tf.Variable(init)

    def replica_fn(ctx):
        rows = slice(4 * ctx.replica_id_in_sync_group, 4 * ctx.replica_id_in_sync_group + 4)
        return x1[rows], x2[rows]

    local = strategy.experimental_distribute_values_from_function(replica_fn)

    @tf.function
    def step(local):
        def fn(pair):
            loss, grad = loss_and_grad(weights, pair[0], pair[1], 2)
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce("sum", loss), ctx.all_reduce("sum", grad)

        return strategy.run(fn, args=(local,))

    losses, grads = step(local)
    for replica_loss, replica_grad in zip(
        strategy.experimental_local_results(losses), strategy.experimental_local_results(grads)
    ):
        np.testing.assert_allclose(float(replica_loss), float(single_loss), atol=1e-5)
        np.testing.assert_allclose(replica_grad.numpy(), single_grad.numpy(), atol=1e-5)


@pytest.mark.slow  # over 30 s on 2 cores; the gradient test above is the fast check
def test_pretrain_steps_give_same_weights_on_one_and_two_replicas(gray_folder, tmp_path):
    """Global BN, gathered negatives and summed gradients make 2 replicas equal 1 (same global
    batch).

    The default strategy, auto's choice on a CPU, gives the same step as one device.

    The sums run in another order (two halves, then added; oneDNN's blocking also follows the
    thread count), so float32 rounding differs: one step's loss agrees to 1e-5 relative, and the
    weights differ by under 1% of the step each tensor took (a BN, negatives or gradient-scaling
    bug moves them by a large part of it).
    """
    cpu_auto = make_strategy("auto")
    assert cpu_auto is tf.distribute.get_strategy()  # no GPU here: auto is the default strategy
    results = {}
    for name, strategy in (
        ("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
        ("auto", cpu_auto),
        ("two", two_replicas()),
    ):
        cfg = tiny_config(
            mode="pretrain",
            dataset=f"folder:{gray_folder}",
            model_dir=str(tmp_path / name),
            train_steps=1,
            steps_per_loop=1,
            optimizer="momentum",
            learning_rate=0.1,
            eval_steps=1,
        )
        runtime.setup_runtime(cfg)
        from tfssl.data.pipeline import DataBundle
        from tfssl.methods.simclr import SimCLRPretrain
        from tfssl.train.trainer import Trainer

        trainer = Trainer(cfg, SimCLRPretrain, DataBundle(cfg, cfg.run_dir), strategy)
        weights = trainer.method.model.encoder.trainable_variables
        initial = [v.numpy() for v in weights]
        result = trainer.fit()
        results[name] = (result["train"]["contrast_loss"], initial, [v.numpy() for v in weights])
    (loss_one, initial_one, final_one), (loss_two, initial_two, final_two) = (
        results["one"],
        results["two"],
    )
    loss_auto, initial_auto, final_auto = results["auto"]
    assert loss_auto == pytest.approx(loss_one, rel=1e-6)
    for start_one, start_auto, one, auto in zip(initial_one, initial_auto, final_one, final_auto):
        np.testing.assert_array_equal(start_auto, start_one)
        np.testing.assert_allclose(
            auto, one, rtol=0, atol=1e-3 * np.abs(one - start_one).max() + 1e-7
        )
    assert loss_one == pytest.approx(loss_two, rel=1e-5)
    for start_one, one, start_two, two in zip(initial_one, final_one, initial_two, final_two):
        np.testing.assert_array_equal(start_one, start_two)
        step = np.abs(one - start_one).max()
        np.testing.assert_allclose(two, one, rtol=0, atol=0.01 * step)
    # Not vacuous: the stem moved. (Inside each residual branch nothing moves on step one: its last
    # batch norm starts with gamma 0, as in the official ResNet, so the branch gets no gradient.)
    assert np.any(final_one[0] != initial_one[0])
