"""ResNet, heads and the SimCLR model: shapes, parameter counts, freezing, config round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import assert_config_round_trip
from tfssl.models import resnet
from tfssl.models.heads import LinearLayer, ProjectionHead, SimCLRModel
from tfssl.models.layers import BATCH_NORM_EPSILON, BatchNormRelu


def count_trainable(layer):
    return sum(int(np.prod(v.shape)) for v in layer.trainable_variables)


def test_resnet50_matches_the_standard_parameter_count():
    """torchvision's ResNet-50 has 25,557,032 parameters, of which its classifier holds
    2048 * 1000 + 1000: the body has 23,508,032."""
    model = resnet.ResNet(depth=50, width_multiplier=1.0)
    features = model(tf.zeros([1, 64, 64, 3]))
    assert features.shape == (1, 2048)
    assert count_trainable(model) == 25_557_032 - 2_049_000


def test_resnet18_parameter_count():
    """torchvision's ResNet-18 body has 11,689,512 - 513,000 parameters; SimCLR's adds a 1x1
    projection conv and its BN to the first block: 64 * 64 + 2 * 64 more."""
    model = resnet.ResNet(depth=18, width_multiplier=1.0)
    model(tf.zeros([1, 64, 64, 3]))
    assert count_trainable(model) == 11_689_512 - 513_000 + 64 * 64 + 2 * 64


LAYERS_PER_BLOCK = {"basic": 2, "bottleneck": 3}


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152, 200])
def test_all_depths_have_their_layer_count(depth):
    """depth = stem conv + convs in the blocks + the (absent) classifier."""
    model = resnet.ResNet(depth=depth, width_multiplier=1 / 16, cifar_stem=True)
    kind = model.block_groups[0][0].get_config()["kind"]
    convs = sum(len(group) for group in model.block_groups) * LAYERS_PER_BLOCK[kind]
    assert 1 + convs + 1 == depth
    if depth <= 50:
        out = model(tf.zeros([2, 16, 16, 1]), training=True)
        assert out.shape == (2, (32 if depth < 50 else 128))


@pytest.mark.parametrize("sk_ratio,se_ratio", [(0.0625, 0.0), (0.0, 0.25), (0.0625, 0.25)])
def test_selective_kernel_and_squeeze_excite(sk_ratio, se_ratio):
    model = resnet.ResNet(depth=50, width_multiplier=0.125, sk_ratio=sk_ratio, se_ratio=se_ratio)
    out = model(tf.zeros([2, 40, 40, 3]), training=True)
    assert out.shape == (2, 256)
    names = " ".join(v.path for v in model.variables)
    assert ("selective_kernel" in names) == (sk_ratio > 0)
    assert ("squeeze_excite" in names) == (se_ratio > 0)


def test_cifar_stem_keeps_resolution():
    endpoints = resnet.ResNet(depth=18, width_multiplier=0.125, cifar_stem=True)(
        tf.zeros([1, 32, 32, 3]), return_endpoints=True
    )
    assert endpoints["block_group1"].shape[1:3] == (32, 32)
    assert endpoints["block_group4"].shape[1:3] == (4, 4)
    endpoints = resnet.ResNet(depth=18, width_multiplier=0.125)(
        tf.zeros([1, 64, 64, 3]), return_endpoints=True
    )
    assert endpoints["block_group1"].shape[1:3] == (16, 16)  # stride-2 conv and max-pool


@pytest.mark.parametrize("after_block,frozen_groups", [(-1, 0), (0, 0), (2, 2), (4, 4)])
def test_fine_tune_after_block_freezes_stem_and_groups(after_block, frozen_groups):
    model = resnet.ResNet(
        depth=18, width_multiplier=0.125, cifar_stem=True, fine_tune_after_block=after_block
    )
    model(tf.zeros([1, 16, 16, 1]))
    trainable = {v.path for v in model.trainable_variables}
    stem = [v for layer in model.stem for v in layer.variables if v.trainable is not None]
    assert all(
        (v.path in trainable) == (after_block < 0)
        for layer in model.stem
        for v in layer.weights
        if "moving" not in v.path
    )
    for group, blocks in enumerate(model.block_groups):
        weights = [v for b in blocks for v in b.weights if "moving" not in v.path]
        assert all((v.path in trainable) == (group >= frozen_groups) for v in weights), group
    assert stem


@pytest.mark.parametrize(
    "mode,layers,out_dim", [("none", 0, 32), ("linear", 1, 8), ("nonlinear", 3, 8)]
)
def test_projection_head_modes(mode, layers, out_dim):
    head = ProjectionHead(mode=mode, out_dim=8, num_layers=3)
    output, hiddens = head(tf.random.normal([4, 32], seed=1), training=True)
    assert output.shape == (4, out_dim)
    assert len(hiddens) == layers + 1
    if mode == "nonlinear":
        assert hiddens[1].shape == (4, 32) and float(tf.reduce_min(hiddens[1])) >= 0.0  # ReLU
        assert float(tf.reduce_min(output)) < 0.0  # no ReLU after the last layer


def test_projection_head_keeps_only_selected_layers():
    head = ProjectionHead(mode="nonlinear", out_dim=8, num_layers=3, num_layers_kept=1)
    head(tf.ones([2, 16]))
    assert len(head.linear_layers) == 1


def test_supervised_head_reads_selected_projection_layer_and_stops_gradient():
    encoder = dict(depth=18, width_multiplier=0.125, cifar_stem=True)
    head = dict(mode="nonlinear", out_dim=8, num_layers=3)
    model = SimCLRModel(
        encoder, head, num_classes=3, ft_proj_selector=1, stop_gradient_to_head=True
    )
    images = tf.random.uniform([4, 16, 16, 1])
    with tf.GradientTape() as tape:
        out = model(images, training=True)
        loss = tf.reduce_sum(out["logits"])
    grads = tape.gradient(
        loss, model.encoder.trainable_variables + model.supervised_head.trainable_variables
    )
    assert all(g is None for g in grads[: len(model.encoder.trainable_variables)])
    assert all(g is not None for g in grads[len(model.encoder.trainable_variables) :])
    assert model.supervised_head.dense.kernel.shape == (64, 3)  # proj layer 1 keeps the input width


def test_zero_init_logits_layer():
    layer = LinearLayer(5, zero_init=True)
    assert float(tf.reduce_sum(tf.abs(layer(tf.ones([2, 4]))))) == 0.0


CUSTOM_LAYERS = [
    BatchNormRelu(relu=False, init_zero=True, momentum=0.8),
    resnet.ConvFixedPadding(4, 3, 2),
    resnet.SelectiveKernelConv(4, 1, 0.0625),
    resnet.SqueezeExcite(4, 0.25),
    resnet.ResidualBlock("bottleneck", 4, 2, use_projection=True, sk_ratio=0.0625),
    resnet.ResNet(depth=34, width_multiplier=0.5, cifar_stem=True, fine_tune_after_block=2),
    LinearLayer(7, use_bias=False, use_bn=True, zero_init=True),
    ProjectionHead(mode="linear", out_dim=12, num_layers=2, num_layers_kept=1),
    SimCLRModel(
        dict(depth=18, width_multiplier=0.125), dict(mode="none"), num_classes=4, ft_proj_selector=0
    ),
]


@pytest.mark.parametrize("layer", CUSTOM_LAYERS, ids=lambda layer: type(layer).__name__)
def test_get_config_round_trip(layer):
    assert_config_round_trip(layer)


@pytest.mark.parametrize("shape", [(8, 5, 5, 6), (16, 6)], ids=["conv", "dense"])
@pytest.mark.parametrize("center", [True, False])
def test_fused_batch_norm_equals_keras_batch_norm(shape, center):
    """Outputs, input gradients, moving statistics and inference match keras' BatchNormalization."""
    x = tf.random.normal(shape, seed=1) * 3 + 1
    fused = BatchNormRelu(relu=True, center=center, momentum=0.9)
    fused.build(shape)
    reference = keras.layers.BatchNormalization(
        momentum=0.9, epsilon=BATCH_NORM_EPSILON, center=center
    )
    reference.build(shape)
    rng = np.random.default_rng(0)
    for mine, theirs in zip(fused.bn.weights, reference.weights):
        value = mine.numpy() + (0.1 * rng.normal(size=mine.shape) if mine.trainable else 0.0)
        mine.assign(value)
        theirs.assign(value)
    weights = tf.range(shape[-1], dtype=tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_fused = fused(x, training=True)
        y_keras = tf.nn.relu(reference(x, training=True))
        loss_fused, loss_keras = tf.reduce_sum(y_fused * weights), tf.reduce_sum(y_keras * weights)
    np.testing.assert_allclose(y_fused, y_keras, atol=1e-5)
    np.testing.assert_allclose(
        tape.gradient(loss_fused, x), tape.gradient(loss_keras, x), atol=1e-5
    )
    for mine, theirs in zip(fused.bn.weights, reference.weights):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-5, err_msg=mine.path)
    np.testing.assert_allclose(
        fused(x, training=False), tf.nn.relu(reference(x, training=False)), atol=1e-5
    )
