"""The pretext objectives as pretraining methods: the encoder learns only through the task, the
linear head only through stop-gradient features, and --mode=finetune restores each encoder."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, tiny_config
from tfssl import jobs, restore
from tfssl.data.pipeline import DataBundle
from tfssl.errors import ConfigError
from tfssl.methods import method_class
from tfssl.models.vit import VisionTransformer
from tfssl.train import launch
from tfssl.train.rundir import RunDirectory

TASKS = ["rotation", "jigsaw", "context_encoder", "colorization", "mae"]
SMALL_VIT = dict(vit_depth=1, vit_width=16, vit_num_heads=2, mae_decoder_depth=1)


def pretext_config(task, folder, model_dir, **flags):
    return tiny_config(
        mode="pretrain",
        ssl_method=task,
        dataset=f"folder:{folder}",
        model_dir=str(model_dir),
        train_batch_size=8,
        eval_steps=1,
        jigsaw_permutations=10,
        **SMALL_VIT,
        **flags,
    )


def built(cfg):
    method = method_class(cfg)(cfg, DataBundle(cfg, cfg.run_dir))
    method.build()
    method.initialize()
    return method


def gradients(method, batch):
    """(loss, metrics, {name: gradients of the total loss}, encoder gradients of the task's own
    loss: the pretext loss and, for the context encoder, its weighted adversarial term)."""
    variables = method.trainable_variables()
    encoder = method.model.encoder.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        loss, metrics = method.loss(batch)
        task_loss = metrics["pretext_loss"]
        if "adversarial_loss" in metrics:
            task_loss += method.cfg.adversarial_weight * metrics["adversarial_loss"]
    total = tape.gradient(loss, variables)
    task_only = tape.gradient(task_loss, encoder)
    return loss, metrics, dict(zip([v.path for v in variables], total)), task_only


@pytest.mark.parametrize("task", TASKS)
def test_task_trains_the_encoder_and_finetune_restores_it(task, gray_folder, rgb_folder, tmp_path):
    folder = rgb_folder if task == "colorization" else gray_folder
    extra = dict(adversarial_weight=0.01, mask_mode="random") if task == "context_encoder" else {}
    cfg = pretext_config(task, folder, tmp_path / "pre", **extra)
    method = built(cfg)
    batch = next(iter(method.train_dataset(None, 0)))
    loss, metrics, total, task_only = gradients(method, batch)
    head = method.model.supervised_head.trainable_variables
    expected = metrics["pretext_loss"] + metrics["supervised_loss"]
    if task == "context_encoder":
        expected += 0.01 * metrics["adversarial_loss"] + metrics["discriminator_loss"]
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    # the encoder learns from the task alone: the linear head reads stop-gradient features, and
    # the critic's loss sees the completed images stop-gradiented
    for variable, gradient in zip(method.model.encoder.trainable_variables, task_only):
        assert gradient is not None, variable.path
        np.testing.assert_allclose(total[variable.path], gradient, rtol=1e-4, atol=1e-7)
    assert all(np.any(total[v.path].numpy() != 0) for v in head)
    for variable in method.pretext.trainable_variables:
        assert total[variable.path] is not None, variable.path
    if task == "context_encoder":  # the critic learns from its own loss, not the generator's
        for variable in method.discriminator.trainable_variables:
            assert np.any(total[variable.path].numpy() != 0)

    # a checkpoint as the trainer writes it, then --mode=finetune restores the encoder exactly
    os.makedirs(cfg.run_dir, exist_ok=True)
    RunDirectory(cfg.run_dir).write_flags(cfg.to_dict(), "pretrain")
    tf.train.Checkpoint(**method.checkpoint_items()).save(str(tmp_path / "pre" / "ckpt"))
    finetune = launch.inherit_architecture(
        tiny_config(
            mode="finetune",
            checkpoint=str(tmp_path / "pre"),
            dataset=f"folder:{folder}",
            model_dir=str(tmp_path / "ft"),
            num_labels=8,
        )
    )
    tuned = built(finetune)
    assert len(tuned.model.encoder.variables) == len(method.model.encoder.variables)
    for mine, theirs in zip(tuned.model.encoder.variables, method.model.encoder.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    images = batch[0]["image"] if isinstance(batch[0], dict) else batch[0]
    logits = tuned.eval_logits(images)
    assert logits.shape == (8, 4)
    if task == "mae":
        assert isinstance(tuned.model.encoder, VisionTransformer)
        assert finetune.architecture == "vit" and finetune.vit_width == 16

    method.write_figures()
    figure = tmp_path / "pre" / method.figure_file
    assert figure.exists() and figure.stat().st_size > 5000


def test_colorization_rebalancing_and_l2_option(rgb_folder, tmp_path):
    method = built(pretext_config("colorization", rgb_folder, tmp_path / "a"))
    weights = method.rebalancing.numpy()
    assert weights.min() < 1 < weights.max()  # rare colours up, common ones down
    l2 = built(pretext_config("colorization", rgb_folder, tmp_path / "b", colorization_loss="l2"))
    batch = next(iter(l2.train_dataset(None, 0)))
    _, metrics = l2.loss(batch)
    outputs, _ = l2.decode(batch[0]["gray"], True)  # batch statistics, as in the loss
    error = np.tanh(outputs.numpy()) - batch[0]["ab"].numpy() / 110
    assert float(metrics["pretext_loss"]) == pytest.approx(np.mean(error**2), rel=1e-2)


def test_pretext_flag_errors(capsys, gray_folder, tmp_path):
    sys.path.insert(0, REPO)
    import run

    code = run.main(
        [
            "run.py",
            "--ssl_method=colorization",
            f"--dataset=folder:{gray_folder}",
            f"--model_dir={tmp_path}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--ssl_method=colorization needs colour images" in err and "1 channel" in err
    with pytest.raises(ConfigError, match="trains no projection head"):
        tiny_config(mode="pretrain", ssl_method="rotation", proj_head_mode="nonlinear")
    with pytest.raises(ConfigError, match="trains a ViT"):
        tiny_config(mode="pretrain", ssl_method="mae", architecture="resnet")
    with pytest.raises(ConfigError, match="multiple of 4 and of --vit_num_heads=3"):
        tiny_config(mode="pretrain", ssl_method="mae", vit_width=16, vit_num_heads=3)


@pytest.mark.slow
def test_mae_pretrain_finetune_export_end_to_end(gray_folder, tmp_path):
    """MAE through the trainer; its fine-tune builds the ViT by itself; the export serves the
    same probabilities without tfssl's Python code in the loop."""
    pre = launch.train(pretext_config("mae", gray_folder, tmp_path / "pre", train_steps=2))
    assert pre["global_step"] == 2 and "top_1_accuracy" in pre["eval"]
    assert (tmp_path / "pre" / "mae_reconstructions.png").exists()
    launch.train(
        tiny_config(
            mode="finetune",
            checkpoint=str(tmp_path / "pre"),
            dataset=f"folder:{gray_folder}",
            model_dir=str(tmp_path / "ft"),
            num_labels=8,
            train_steps=2,
            eval_steps=1,
        )
    )
    export_dir = str(tmp_path / "export")
    jobs.run(tiny_config(mode="export", checkpoint=str(tmp_path / "ft"), export_dir=export_dir))
    method, data, _, _ = restore.load_trained(str(tmp_path / "ft"))
    assert isinstance(method.model.encoder, VisionTransformer)
    images = next(iter(data.eval_batches(method.eval_view, 4, "test", 1)))[0]
    loaded = tf.saved_model.load(export_dir)
    served = loaded.call_inference(images)
    np.testing.assert_allclose(
        served["probabilities"], tf.nn.softmax(method.eval_logits(images)), atol=1e-5
    )
    assert os.path.exists(export_dir + ".keras")


# rotation (a ResNet, as SimCLR's monitor in test_ssl_methods.py): slow; MAE's ViT stays.
@pytest.mark.parametrize("task", [pytest.param("rotation", marks=pytest.mark.slow), "mae"])
def test_knn_monitor_reads_the_pretext_encoder(task, gray_folder, tmp_path):
    """The k-NN accuracy a pretext run reports equals numpy's on its encoder's features (ResNet
    for rotation, ViT for MAE)."""
    from tests.test_ssl_methods import numpy_knn_accuracy

    cfg = pretext_config(task, gray_folder, tmp_path / "pre", train_steps=2, knn_k=5)
    result = launch.train(cfg)
    method, data, _, _ = restore.load_trained(str(tmp_path / "pre"))
    features = {}
    for split, steps in (("train", None), ("test", cfg.eval_steps)):
        batches = data.eval_batches(method.eval_view, cfg.eval_batch_size, split, steps)
        pairs = [(method.frozen_features(x).numpy(), y.numpy()) for x, y in batches]
        features[split] = [np.concatenate(p) for p in zip(*pairs)]
    expected = numpy_knn_accuracy(*features["train"], *features["test"], 5, cfg.knn_temperature)
    assert result["eval"]["knn_top_1_accuracy"] == pytest.approx(expected, abs=1e-6)


def test_supervised_builds_the_same_vit(gray_folder, tmp_path):
    cfg = tiny_config(
        mode="supervised",
        architecture="vit",
        dataset=f"folder:{gray_folder}",
        model_dir=str(tmp_path),
        **SMALL_VIT,
    )
    method = built(cfg)
    assert isinstance(method.model.encoder, VisionTransformer)
    assert method.model.encoder.num_patches == 16  # 16-px images, 4-px patches
    assert method.model(tf.zeros([2, 16, 16, 1]))["logits"].shape == (2, 4)


def test_compare_pretrains_each_objective_then_fine_tunes_it(tmp_path, monkeypatch):
    """--methods=...,rotation,mae: each objective's recipe pretrains once (<name>_pretrain.cfg,
    which names its --ssl_method), then each fraction fine-tunes from that run."""
    from tfssl import recipes
    from tfssl.compare import Comparison

    cfg = tiny_config(
        mode="compare",
        methods="supervised,rotation,mae",
        label_fractions="0.1,1.0",
        model_dir=str(tmp_path),
        budget="tiny",
    )
    comparison = Comparison(cfg)
    calls = []

    def record(self, recipe, job, role, model_dir, **flags):
        path = recipes.recipe_path(self.recipe_dir, cfg.dataset, recipe)
        ssl = recipes.read_recipe(path, job).get("ssl_method")
        checkpoint = flags.get("checkpoint")
        where = os.path.relpath(checkpoint, tmp_path) if checkpoint else None
        calls.append((job, os.path.relpath(model_dir, tmp_path), ssl, where))
        return {
            "eval": {"top_1_accuracy": 0.5},
            "train_wall_time_s": 1,
            "epochs": 1,
            "global_step": 4,
        }

    monkeypatch.setattr(Comparison, "run_job", record)
    rows = comparison.run()
    assert calls[:2] == [
        ("pretrain", "rotation_pretrain", "rotation", None),
        ("pretrain", "mae_pretrain", "mae", None),
    ]
    assert ("finetune", "rotation/10pct/seed0", None, "rotation_pretrain") in calls
    assert ("finetune", "mae/100pct/seed0", None, "mae_pretrain") in calls
    assert [r["method"] for r in rows] == ["supervised"] * 2 + ["rotation"] * 2 + ["mae"] * 2


@pytest.mark.slow
@pytest.mark.parametrize("task", ["rotation", "jigsaw"])
def test_one_and_two_replicas_take_the_same_step(task, gray_folder, tmp_path):
    """Global BN over all rotations (or tiles) of the global batch: 2 replicas equal 1."""
    from tfssl.train import runtime
    from tfssl.train.distribute import make_strategy
    from tfssl.train.trainer import Trainer

    results = {}
    for name, strategy in (
        ("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
        ("two", make_strategy("mirrored")),
    ):
        cfg = pretext_config(
            task, gray_folder, tmp_path / name, train_steps=1, steps_per_loop=1, warmup_epochs=0
        )
        runtime.setup_runtime(cfg)
        trainer = Trainer(cfg, method_class(cfg), DataBundle(cfg, cfg.run_dir), strategy)
        weights = trainer.method.model.encoder.trainable_variables
        initial = [v.numpy() for v in weights]
        result = trainer.fit()
        results[name] = (result["train"]["pretext_loss"], initial, [v.numpy() for v in weights])
    (loss_one, initial_one, final_one), (loss_two, initial_two, final_two) = results.values()
    assert loss_one == pytest.approx(loss_two, rel=1e-5)
    for start_one, one, start_two, two in zip(initial_one, final_one, initial_two, final_two):
        np.testing.assert_array_equal(start_one, start_two)
        np.testing.assert_allclose(two, one, rtol=0, atol=0.01 * np.abs(one - start_one).max())
    assert np.any(final_one[0] != initial_one[0])


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_each_task_learns_its_pretext(task, gray_folder, rgb_folder, tmp_path):
    """80 steps lower each task's loss on the synthetic bands by a fifth. (MAE regresses raw
    pixels here: normalised, each patch of the noisy background is unpredictable noise.)"""
    from tfssl.train.summaries_io import read_scalars

    folder = rgb_folder if task == "colorization" else gray_folder
    rate = (
        1e-3 if method_class(tiny_config(ssl_method=task)).defaults["optimizer"] == "adam" else 0.05
    )
    cfg = pretext_config(
        task,
        folder,
        tmp_path,
        train_steps=80,
        steps_per_loop=20,
        checkpoint_steps=20,
        warmup_epochs=0,
        learning_rate=rate,
        learning_rate_scaling="constant",
        norm_pix_loss=task != "mae",
    )
    launch.train(cfg)
    loss = [v for _, v in read_scalars(str(tmp_path / "train"))["train/pretext_loss"]]
    assert loss[-1] < 0.8 * loss[0], loss
