"""Checkpoints written by the official SimCLR TF2 code (tests/data/official_simclr_tf2, made with
google-research/simclr tf2/run.py): the network read from their shapes, every recorded output
matched, --checkpoint for pretrain, finetune and distill, --variable_schema and conversion."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, tiny_config
from tfssl import jobs, restore
from tfssl.config import Config
from tfssl.errors import CheckpointError, ConfigError
from tfssl.train import launch
from tfssl.train.checkpoints import resolve_checkpoint
from tfssl.train.warm_start import official_model, warm_start

DATA = os.path.join(REPO, "tests", "data", "official_simclr_tf2")
R18 = os.path.join(DATA, "r18_pretrain")
R50 = os.path.join(DATA, "r50_sk_se_finetune")
LINEAR_EVAL_SCHEMA = "(?!global_step|(?:.*/|^)Momentum|head)"
ONE_PERCENT_SCHEMA = "(?!global_step|(?:.*/|^)Momentum|head_supervised)"
OUTPUTS = [f"block_group{i}" for i in range(1, 5)] + [
    "initial_max_pool",
    "final_avg_pool",
    "proj_head_input",
    "proj_head_output",
    "logits_sup",
]
# How the two checkpoints were made (tests/data/official_simclr_tf2/README.md).
R18_NETWORK = dict(resnet_depth=18, width_multiplier=1 / 16, sk_ratio=0.0, se_ratio=0.0)
R50_NETWORK = dict(resnet_depth=50, width_multiplier=1 / 32, sk_ratio=0.0625, se_ratio=0.25)


def saved_model_dir(tmp_path):
    """The r18 run's exported SavedModel: its variables and a placeholder graph file."""
    directory = tmp_path / "saved_model"
    shutil.copytree(os.path.join(R18, "saved_model_variables"), directory / "variables")
    (directory / "saved_model.pb").write_bytes(b"")  # the 2 MB graph is not kept in the repo
    return str(directory)


def official_keys(directory, prefix):
    """Keys of the variables below `prefix` (not their optimizer slots), read with TF alone."""
    return [
        n
        for n, _ in tf.train.list_variables(directory)
        if n.startswith(prefix) and ".OPTIMIZER_SLOT" not in n
    ]


@pytest.mark.parametrize("source", ["r18", "r18_saved_model", "r50"])
def test_every_official_output_is_matched(source, tmp_path):
    """The network comes from the checkpoint's shapes, and in eval mode its block groups, pooled
    features, projection-head input and output, and logits equal what the official SavedModel
    gave on the same images."""
    path = {"r18": R18, "r18_saved_model": saved_model_dir(tmp_path), "r50": R50}[source]
    recorded = np.load(os.path.join(R50 if source == "r50" else R18, "outputs.npz"))
    resolved = resolve_checkpoint(path)
    assert resolved.official
    images = recorded["images"]
    model, cfg, extra = official_model(Config(), resolved, images.shape[1:])
    for name, value in (R50_NETWORK if source == "r50" else R18_NETWORK).items():
        assert getattr(cfg, name) == value, name
    assert (cfg.proj_head_mode, cfg.num_proj_layers, cfg.proj_out_dim) == ("nonlinear", 3, 16)
    assert extra == dict(cifar_stem=source != "r50", channels=3, num_classes=10)
    # the fine-tuned run's head reads projection layer 1, as its flags.json says
    assert model.ft_proj_selector == (1 if source == "r50" else 0)
    outputs = model(images, training=False, return_endpoints=True)
    outputs["logits_sup"] = outputs["logits"]
    for name in OUTPUTS:
        np.testing.assert_allclose(outputs[name], recorded[name], atol=1e-5, err_msg=name)


def test_grayscale_images_use_the_summed_first_kernels():
    """On a 1-channel image the network equals the colour one on that image in three channels."""
    resolved = resolve_checkpoint(R18)
    gray, _, _ = official_model(Config(), resolved, (32, 32, 1))
    colour, _, _ = official_model(Config(), resolved, (32, 32, 3))
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(
        gray(images, training=False)["logits"],
        colour(np.repeat(images, 3, -1), training=False)["logits"],
        atol=1e-5,
    )


def test_variable_schema_selects_what_is_restored():
    """The official linear-eval regex restores the ResNet only; the 1% one the projection head
    too; neither the linear head. Counts are the checkpoint's own."""
    resolved = resolve_checkpoint(R18)
    encoder = len(official_keys(R18, "model/resnet_model/"))
    first_layer = len(official_keys(R18, "model/_projection_head/linear_layers/0/"))
    assert (encoder, first_layer) == (105, 5)  # 21 convolutions and batch norms; 1+4
    network = {**R18_NETWORK, "proj_out_dim": 16, "mode": "finetune"}
    cfg = Config(**network)
    from tfssl.models.factory import build_simclr_model

    def fresh():
        return build_simclr_model(cfg, 4, (32, 32, 3), ft_proj_selector=1, num_proj_layers_kept=1)

    model = fresh()
    restored = warm_start(model, resolved.prefix, True, LINEAR_EVAL_SCHEMA)
    assert restored == {"base_model": encoder}
    reader = tf.train.load_checkpoint(R18)
    head_kernel = reader.get_tensor(
        "model/_projection_head/linear_layers/0/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    )
    assert not np.allclose(model.projection_head.linear_layers[0].dense.kernel, head_kernel)
    model = fresh()
    restored = warm_start(model, resolved.prefix, True, ONE_PERCENT_SCHEMA)
    assert restored == {"base_model": encoder, "head_contrastive": first_layer}
    np.testing.assert_array_equal(model.projection_head.linear_layers[0].dense.kernel, head_kernel)
    with pytest.raises(CheckpointError, match="selects no variable"):
        warm_start(fresh(), resolved.prefix, True, "nothing")


def _write_tree(values, prefix):
    """An object-based checkpoint holding `values` {path: array} under those object paths."""
    root = tf.train.Checkpoint()
    for path, value in values.items():
        node = root
        *parents, leaf = path.split("/")
        for name in parents:
            if not hasattr(node, name):
                setattr(node, name, tf.Module())
            node = getattr(node, name)
        setattr(node, leaf, tf.Variable(value))
    return root.write(prefix)


def test_a_variable_that_does_not_map_is_named(tmp_path):
    reader = tf.train.load_checkpoint(R18)
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    values = {
        k[: -len(suffix)]: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k.startswith("model/") and k.endswith(suffix)
    }
    extra = "model/resnet_model/block_groups/1/layers/0/attention/kernel"
    values[extra] = np.zeros([1, 1, 4, 4], np.float32)
    prefix = _write_tree(values, str(tmp_path / "ckpt"))
    resolved = resolve_checkpoint(prefix)
    assert resolved.official
    with pytest.raises(CheckpointError) as error:
        official_model(Config(), resolved, (32, 32, 3))
    message = str(error.value)
    assert extra in message and "maps to none" in message and len(message.splitlines()) == 1


def test_the_stem_follows_the_image_size():
    with pytest.raises(CheckpointError, match="first convolution .* set --image_size=224"):
        official_model(Config(), resolve_checkpoint(R50), (32, 32, 3))


def test_convert_checkpoint_writes_a_tfssl_run_once(tmp_path):
    out = str(tmp_path / "converted")
    convert = dict(mode="convert_checkpoint", checkpoint=R18, model_dir=out)
    jobs.run(Config.for_job(convert))
    flags = json.load(open(os.path.join(out, "flags.json")))
    assert flags["job"] == "convert_checkpoint" and flags["width_multiplier"] == 1 / 16
    method, _, resolved, _ = restore.load_trained(
        out, Config(dataset="synthetic:32x32x3"), setup=False
    )
    assert resolved.prefix.endswith("ckpt-0") and not resolved.official
    recorded = np.load(os.path.join(R18, "outputs.npz"))
    outputs = method.model(recorded["images"], training=False, return_endpoints=True)
    np.testing.assert_allclose(outputs["logits"], recorded["logits_sup"], atol=1e-5)
    np.testing.assert_allclose(outputs["proj_head_output"], recorded["proj_head_output"], atol=1e-5)
    with pytest.raises(ConfigError, match="already holds a run"):
        jobs.run(Config.for_job(convert))
    with pytest.raises(ConfigError, match="not an official SimCLR TF2 checkpoint"):
        jobs.run(Config.for_job({**convert, "checkpoint": out, "model_dir": str(tmp_path / "x")}))
    with pytest.raises(ConfigError, match="holds a convert_checkpoint run"):
        launch.train(tiny_config(mode="pretrain", model_dir=out, dataset="synthetic:32x32x3"))


def test_linear_eval_from_an_official_checkpoint(rgb_folder, tmp_path):
    """--mode=finetune --checkpoint=<official model_dir>: the network is the checkpoint's, not the
    flags' (ResNet-34, width 1/4 and 8-d projections asked here), and after a linear evaluation
    the ResNet still gives the official features."""
    run_dir = str(tmp_path / "ft")
    launch.train(
        tiny_config(
            mode="finetune",
            checkpoint=R18,
            dataset=f"folder:{rgb_folder}",
            model_dir=run_dir,
            fine_tune_after_block=4,
            resnet_depth=34,
            width_multiplier=0.25,
            proj_out_dim=8,
            train_steps=2,
            eval_steps=1,
        )
    )
    flags = json.load(open(os.path.join(run_dir, "flags.json")))
    assert (flags["resnet_depth"], flags["width_multiplier"], flags["proj_out_dim"]) == (
        18,
        1 / 16,
        16,
    )
    method = restore.load_trained(run_dir, setup=False)[0]
    recorded = np.load(os.path.join(R18, "outputs.npz"))
    features = method.model.encoder(recorded["images"], training=False)
    np.testing.assert_allclose(features, recorded["final_avg_pool"], atol=1e-5)


@pytest.mark.slow
def test_pretraining_continues_from_an_official_saved_model(rgb_folder, tmp_path):
    """--mode=pretrain --checkpoint=<official SavedModel>: training starts from its weights (at a
    learning rate of 1e-12 they stay put)."""
    run_dir = str(tmp_path / "pre")
    result = launch.train(
        tiny_config(
            mode="pretrain",
            checkpoint=saved_model_dir(tmp_path),
            dataset=f"folder:{rgb_folder}",
            model_dir=run_dir,
            learning_rate=1e-12,
            train_steps=2,
            eval_steps=1,
        )
    )
    assert result["global_step"] == 2
    model = restore.load_trained(run_dir, setup=False)[0].model
    reader = tf.train.load_checkpoint(R18)
    for ours, key in [
        (model.encoder.stem[0].conv.kernel, "resnet_model/initial_conv_relu_max_pool/0/conv2d"),
        (
            model.projection_head.linear_layers[2].dense.kernel,
            "_projection_head/linear_layers/2/dense",
        ),
    ]:
        official = reader.get_tensor(f"model/{key}/kernel/.ATTRIBUTES/VARIABLE_VALUE")
        np.testing.assert_allclose(ours, official, atol=1e-6)


@pytest.mark.slow
def test_distill_from_an_official_fine_tuned_checkpoint(tmp_path):
    """--mode=distill --checkpoint=<official fine-tuned run>: the teacher's logits are the official
    ones, and the student takes the teacher's network."""
    from tfssl.methods.distill import load_teacher

    recorded = np.load(os.path.join(R50, "outputs.npz"))
    teacher, classes = load_teacher(R50, (64, 64, 3), Config())
    assert classes == 10
    np.testing.assert_allclose(teacher(recorded["images"]), recorded["logits_sup"], atol=1e-5)
    run_dir = str(tmp_path / "distill")
    result = launch.train(
        tiny_config(
            mode="distill",
            checkpoint=R50,
            dataset="synthetic:64x64x3",
            model_dir=run_dir,
            train_steps=2,
            eval_steps=1,
        )
    )
    assert result["global_step"] == 2 and 0 <= result["train"]["teacher_agreement"] <= 1
    flags = json.load(open(os.path.join(run_dir, "flags.json")))
    assert (flags["resnet_depth"], flags["sk_ratio"], flags["se_ratio"]) == (50, 0.0625, 0.25)
    with pytest.raises(CheckpointError, match="convert it first"):
        restore.load_trained(R50)
