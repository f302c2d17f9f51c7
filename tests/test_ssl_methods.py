"""BYOL, SimSiam and MoCo as methods: the momentum updates, no gradient into target or key
branches, MoCo's queue on 2 replicas, fine-tuning their encoders, and the k-NN monitor."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_config
from tfssl import jobs, restore
from tfssl.data.pipeline import DataBundle
from tfssl.errors import ConfigError
from tfssl.losses.contrastive import gather_across_replicas
from tfssl.methods import lookup
from tfssl.train import launch, runtime
from tfssl.train.distribute import make_strategy
from tfssl.train.summaries_io import read_scalars

TINY = dict(predictor_hidden_dim=16, eval_steps=1)  # a 4-unit bottleneck can die at 16 outputs


def build(ssl_method, folder, tmp_path, strategy=None, **values):
    cfg = tiny_config(
        mode="pretrain",
        ssl_method=ssl_method,
        dataset=f"folder:{folder}",
        model_dir=str(tmp_path),
        **{**TINY, **values},
    )
    runtime.setup_runtime(cfg)
    strategy = strategy or tf.distribute.get_strategy()
    method = lookup("pretrain", ssl_method)(
        cfg, DataBundle(cfg, cfg.run_dir), strategy.num_replicas_in_sync
    )
    with strategy.scope():
        method.build()
        method.step = tf.Variable(0, dtype=tf.int64, trainable=False)
    return method


def first_batch(method):
    return next(iter(method.train_dataset(None, 0)))


@pytest.mark.parametrize("ssl_method,target_name", [("byol", "target"), ("moco", "key_model")])
def test_momentum_update_follows_the_formula(gray_folder, tmp_path, ssl_method, target_name):
    method = build(ssl_method, gray_folder, tmp_path)
    target = getattr(method, target_name)
    rng = np.random.default_rng(0)
    for v in method.model.trainable_variables:  # move the online network away from the target
        v.assign(v.numpy() + rng.normal(size=v.shape).astype(np.float32))
    online = method.model.encoder.variables + method.model.projection_head.variables
    copy = target.encoder.variables + target.projection_head.variables
    before = [(t.numpy(), o.numpy(), o.trainable) for t, o in zip(copy, online)]
    method.step.assign(300)
    total = method.total_steps
    method.after_update()
    if ssl_method == "byol":  # tau_k = 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2
        tau = 1 - (1 - 0.996) * (math.cos(math.pi * 300 / total) + 1) / 2
    else:
        tau = 0.999
    assert total == 4 and tau != 0.996  # tiny_config's 4 steps: k > K gives tau > base
    for t, (t_before, o_before, trainable) in zip(copy, before):
        if trainable:
            np.testing.assert_allclose(
                t.numpy(), tau * t_before + (1 - tau) * o_before, rtol=1e-5, atol=1e-6
            )
        else:  # batch-norm statistics are the target's own
            np.testing.assert_array_equal(t.numpy(), t_before)


@pytest.mark.parametrize("ssl_method", ["byol", "simsiam", "moco"])
def test_gradients_reach_only_the_online_branch(gray_folder, tmp_path, ssl_method):
    method = build(ssl_method, gray_folder, tmp_path)
    batch = first_batch(method)
    trainable = method.trainable_variables()
    others = {
        "byol": lambda: method.target.trainable_variables,
        "simsiam": lambda: [],
        "moco": lambda: method.key_model.trainable_variables + [method.queue],
    }[ssl_method]()
    assert not {id(v) for v in others} & {id(v) for v in trainable}
    with tf.GradientTape(persistent=True) as tape:
        if ssl_method == "moco":
            tape.watch(method.queue)  # trainable variables (the target's too) are watched anyway
        loss, metrics = method.loss(batch)
    assert all(g is None for g in tape.gradient(loss, others))
    grads = tape.gradient(loss, method.model.encoder.trainable_variables)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads if g is not None) > 0


def test_simsiam_fixed_predictor_rate_scales_only_its_gradients(gray_folder, tmp_path):
    method = build(ssl_method="simsiam", folder=gray_folder, tmp_path=tmp_path)
    method.learning_rate_schedule(0.4, 0, 100)
    pairs = [(tf.ones_like(v), v) for v in method.trainable_variables()]
    adjusted = method.adjust_gradients(pairs, tf.constant(0.1))
    predictor = {id(v) for v in method.predictor.trainable_variables}
    for (g, v), (before, _) in zip(adjusted, pairs):
        expected = 4.0 if id(v) in predictor else 1.0  # peak 0.4 / lr 0.1
        np.testing.assert_allclose(g.numpy(), expected * before.numpy())
    assert len(predictor) == 5  # two kernels, the output bias, BN gamma and beta


def test_moco_queue_after_several_enqueues_on_two_replicas(gray_folder, tmp_path):
    strategy = make_strategy("mirrored")
    method = build("moco", gray_folder, tmp_path, strategy, train_batch_size=4, queue_size=10)
    rng = np.random.default_rng(0)
    expected, pointer = method.queue.numpy().copy(), 0

    @tf.function
    def step(local):
        def enqueue_gathered(keys):
            method.enqueue(gather_across_replicas(keys)[0])

        strategy.run(enqueue_gathered, args=(local,))

    for _ in range(4):  # 4 keys a step into 10 rows: wraps on the 3rd step
        keys = rng.normal(size=(4, 16)).astype(np.float32)
        local = strategy.experimental_distribute_values_from_function(
            lambda ctx, keys=keys: tf.constant(keys[2 * ctx.replica_id_in_sync_group :][:2])
        )
        step(local)
        for j in range(4):  # replica 0's keys, then replica 1's, unit length
            expected[(pointer + j) % 10] = keys[j] / np.linalg.norm(keys[j])
        pointer = (pointer + 4) % 10
        for copy in method.queue.values:
            np.testing.assert_allclose(copy.numpy(), expected, atol=1e-6)
        assert [int(p) for p in method.queue_pointer.values] == [pointer, pointer]


def test_moco_shuffled_keys_come_back_in_order_on_two_replicas(gray_folder, tmp_path):
    strategy = make_strategy("mirrored")
    method = build("moco", gray_folder, tmp_path, strategy, train_batch_size=8, bn_splits=2)
    seen = []

    def identity_network(network, images):  # keys = the images themselves, flattened
        seen.append(images)
        return {"projection": tf.reshape(images, [images.shape[0], -1])}

    method.grouped = identity_network
    images = tf.random.stateless_uniform([8, 4, 4, 1], seed=[1, 2])
    local = strategy.experimental_distribute_values_from_function(
        lambda ctx: images[4 * ctx.replica_id_in_sync_group :][:4]
    )
    keys, all_keys = strategy.run(tf.function(method.keys), args=(local,))
    flat = tf.reshape(images, [8, -1]).numpy()
    for replica, (mine, everything) in enumerate(
        zip(
            strategy.experimental_local_results(keys), strategy.experimental_local_results(all_keys)
        )
    ):
        np.testing.assert_array_equal(mine.numpy(), flat[4 * replica :][:4])
        np.testing.assert_array_equal(everything.numpy(), flat)


@pytest.mark.parametrize(
    "values,message",
    [
        (dict(ssl_method="moco", global_bn=True), "--shuffle_bn and --global_bn"),
        (dict(ssl_method="moco", queue_size=8, train_batch_size=16), "--queue_size=8"),
        (dict(ssl_method="simsiam", optimizer="lars"), "--predictor_fixed_lr needs"),
    ],
)
def test_bad_flags_are_one_line_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(mode="pretrain", **values)


def test_method_defaults_leave_simclr_alone():
    assert tiny_config(mode="pretrain", ssl_method="moco").temperature == 0.2
    assert tiny_config(mode="pretrain", ssl_method="moco", temperature=0.5).temperature == 0.5
    assert tiny_config(mode="pretrain", ssl_method="simsiam").optimizer == "momentum"
    simclr = tiny_config(mode="pretrain")
    assert (simclr.optimizer, simclr.learning_rate, simclr.shuffle_bn) == ("lars", 1.0, False)


def numpy_knn_accuracy(train_features, train_labels, test_features, test_labels, k, temperature):
    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    similarity = unit(test_features) @ unit(train_features).T
    correct = 0
    for row, label in zip(similarity, test_labels):
        nearest = np.argsort(-row)[:k]
        scores = np.zeros(train_labels.max() + 1)
        np.add.at(scores, train_labels[nearest], np.exp(row[nearest] / temperature))
        correct += np.argmax(scores) == label
    return correct / len(test_labels)


@pytest.fixture(scope="module")
def moco_run(gray_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("moco")
    cfg = tiny_config(
        mode="pretrain",
        ssl_method="moco",
        dataset=f"folder:{gray_folder}",
        model_dir=str(root / "pre"),
        train_steps=8,  # 64 images of batch 16: the k-NN monitor runs at step 4 and at the end
        knn_k=10,
        eval_steps=0,
    )
    return root, cfg, launch.train(cfg)


def test_knn_monitor_logs_and_matches_numpy(moco_run):
    root, cfg, result = moco_run
    curve = read_scalars(str(root / "pre" / "train"))["eval/knn_top_1_accuracy"]
    assert [step for step, _ in curve] == [4, 8]
    method, data, _, _ = restore.load_trained(str(root / "pre"))
    features = {}
    for split in ("train", "test"):
        batches = data.eval_batches(method.eval_view, 32, split)
        pairs = [(method.frozen_features(x).numpy(), y.numpy()) for x, y in batches]
        features[split] = [np.concatenate(p) for p in zip(*pairs)]
    expected = numpy_knn_accuracy(*features["train"], *features["test"], 10, 0.1)
    assert result["eval"]["knn_top_1_accuracy"] == pytest.approx(expected, abs=1e-6)
    assert curve[-1][1] == pytest.approx(expected, abs=1e-6)
    assert (
        json.load(open(root / "pre" / "result.json"))["eval"]["knn_top_1_accuracy"]
        == (result["eval"]["knn_top_1_accuracy"])
    )
    assert result["peak_rss_gib"] > 0.1 and result["train_images_per_s"] > 0


def test_knn_eval_of_a_checkpoint_and_of_its_saved_model(moco_run, tmp_path):
    root, cfg, result = moco_run
    evaluated = jobs.run(cfg.replace(mode="eval", checkpoint=str(root / "pre"), knn=True))
    knn = result["eval"]["knn_top_1_accuracy"]
    assert evaluated["eval"]["knn_top_1_accuracy"] == pytest.approx(knn, abs=1e-6)
    export_dir = str(tmp_path / "exported")
    jobs.run(cfg.replace(mode="export", checkpoint=str(root / "pre"), export_dir=export_dir))
    exported = jobs.run(cfg.replace(mode="eval", checkpoint=export_dir, knn=True))
    assert exported["eval"]["knn_top_1_accuracy"] == pytest.approx(knn, abs=1e-6)


def linear_eval_keeps_the_pretrained_encoder(pretrain_dir, tmp_path, common):
    pretrained, *_ = restore.load_trained(pretrain_dir)
    linear = launch.train(
        tiny_config(
            mode="finetune",
            checkpoint=pretrain_dir,
            model_dir=str(tmp_path / "linear"),
            fine_tune_after_block=4,
            ft_proj_selector=0,
            train_steps=2,
            **common,
        )
    )
    assert linear["eval"]["num_examples"] == 24
    finetuned, *_ = restore.load_trained(str(tmp_path / "linear"))
    for a, b in zip(pretrained.model.encoder.variables, finetuned.model.encoder.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # restored, then frozen


def test_fine_tune_takes_the_query_encoder_of_moco(moco_run, gray_folder, tmp_path):
    root, _, _ = moco_run
    common = dict(dataset=f"folder:{gray_folder}", eval_steps=1)
    linear_eval_keeps_the_pretrained_encoder(str(root / "pre"), tmp_path, common)


@pytest.mark.slow
@pytest.mark.parametrize("ssl_method", ["byol", "simsiam"])
def test_fine_tune_takes_the_online_encoder(gray_folder, tmp_path, ssl_method):
    common = dict(dataset=f"folder:{gray_folder}", **TINY)
    pretrain_dir = str(tmp_path / "pre")
    result = launch.train(
        tiny_config(
            mode="pretrain", ssl_method=ssl_method, model_dir=pretrain_dir, knn_k=0, **common
        )
    )
    assert np.isfinite(result["train"]["loss"]) and result["global_step"] == 4
    linear_eval_keeps_the_pretrained_encoder(pretrain_dir, tmp_path, common)


def test_compare_pretrains_each_objective_once_and_fine_tunes_from_it(monkeypatch, tmp_path):
    from tfssl.compare import Comparison
    from tfssl.train import launch

    runs = []

    def fake_train(cfg):
        runs.append(cfg)
        best = {"step": 1, "balanced_accuracy": 0.5, "loss": 1.0}  # a --best_checkpoint_metric run
        return {
            "eval": {"top_1_accuracy": 0.5},
            "train_wall_time_s": 1,
            "epochs": 1,
            "global_step": cfg.train_steps,
            "selection": {"best": best, "best_step": 1, "history": [best]},
        }

    monkeypatch.setattr(launch, "train", fake_train)
    cfg = tiny_config(
        mode="compare",
        model_dir=str(tmp_path),
        methods="simclr,byol,simsiam,moco,simclr_distill",
        label_fractions="0.1",
        budget="tiny",
    )
    Comparison(cfg).run()
    objectives = ("simclr", "byol", "simsiam", "moco")
    pretrains = [
        (os.path.relpath(c.model_dir, tmp_path), c.ssl_method) for c in runs if c.mode == "pretrain"
    ]
    assert pretrains == [(f"{m}_pretrain", m) for m in objectives]
    finetunes = {
        os.path.relpath(c.model_dir, tmp_path): c.checkpoint for c in runs if c.mode == "finetune"
    }
    assert finetunes["simclr_linear/10pct/seed0"] == str(tmp_path / "simclr_pretrain")
    for method in ("byol", "simsiam", "moco"):
        assert finetunes[f"{method}/10pct/seed0"] == str(tmp_path / f"{method}_pretrain")
