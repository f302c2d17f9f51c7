"""The official SimCLR TF2 code's variable names (google-research/simclr, tf2/): which variable of a
tfssl SimCLRModel each official checkpoint path holds, and the network a checkpoint describes.

Paths are the object paths of a checkpoint that tf2/run.py writes (tf.train.Checkpoint(model=...)),
below `model/`: `resnet_model/...`, `_projection_head/linear_layers/<j>/...` and
`supervised_head/linear_layer/...`. The official lists also hold layers without variables
(IdentityLayer, DropBlock), so their indices skip positions that tfssl's lists do not have.
"""

import re

from tfssl.models.layers import BatchNormRelu
from tfssl.models.resnet import BLOCKS, ConvFixedPadding, SelectiveKernelConv, SqueezeExcite

BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
SK_MIN_DIM = 32  # the official SK_Conv2D's min_dim
PROJECTION_LAYER = re.compile(r"_projection_head/linear_layers/(\d+)/")


def _bn(prefix, layer):
    bn = layer.bn
    return {f"{prefix}/{n}": getattr(bn, n) for n in BN_VARIABLES if getattr(bn, n) is not None}


def _dense(prefix, dense):
    names = {f"{prefix}/kernel": dense.kernel}
    if dense.use_bias:
        names[f"{prefix}/bias"] = dense.bias
    return names


def layer_names(prefix, layer):
    """{official path: variable} of one tfssl layer whose official counterpart sits at prefix."""
    if isinstance(layer, ConvFixedPadding):
        return {f"{prefix}/conv2d/kernel": layer.conv.kernel}
    if isinstance(layer, BatchNormRelu):
        return _bn(f"{prefix}/bn", layer)
    if isinstance(layer, SelectiveKernelConv):
        return {
            f"{prefix}/conv2d_fixed_padding/conv2d/kernel": layer.conv.conv.kernel,
            **_bn(f"{prefix}/batch_norm_relu/bn", layer.bn),
            f"{prefix}/conv2d_0/kernel": layer.reduce.kernel,
            **_bn(f"{prefix}/batch_norm_relu_1/bn", layer.reduce_bn),
            f"{prefix}/conv2d_1/kernel": layer.expand.kernel,
        }
    if isinstance(layer, SqueezeExcite):
        return {
            **_dense(f"{prefix}/se_reduce", layer.reduce),
            **_dense(f"{prefix}/se_expand", layer.expand),
        }
    if layer.weights:
        raise ValueError(f"no official counterpart for {type(layer).__name__}")
    return {}  # pooling and padding


def _linear(prefix, linear):
    names = _dense(f"{prefix}/dense", linear.dense)
    if linear.bn is not None:
        names.update(_bn(f"{prefix}/bn_relu/bn", linear.bn))
    return names


def _block(prefix, block):
    bottleneck = block._config["kind"] == "bottleneck"
    names = {}
    shortcut = "projection_layers" if bottleneck else "shortcut_layers"
    for i, layer in enumerate(block.shortcut):  # same positions as the official list
        names.update(layer_names(f"{prefix}/{shortcut}/{i}", layer))
    body = "conv_relu_dropblock_layers" if bottleneck else "conv2d_bn_layers"
    index = 0
    for layer in block.body:
        if isinstance(layer, SqueezeExcite) and not bottleneck:
            names.update(layer_names(f"{prefix}/se_layer", layer))
            continue
        names.update(layer_names(f"{prefix}/{body}/{index}", layer))
        index += 1
        if bottleneck and isinstance(layer, (BatchNormRelu, SelectiveKernelConv)):
            index += 1  # the official DropBlock after each normalised stage
    return names


def official_names(model):
    """{official checkpoint path below model/: variable} for every variable of a SimCLRModel."""
    encoder = model.encoder
    names = {}
    last_conv = max(i for i, s in enumerate(encoder.stem) if isinstance(s, ConvFixedPadding))
    index = 0
    for i, layer in enumerate(encoder.stem):
        names.update(layer_names(f"resnet_model/initial_conv_relu_max_pool/{index}", layer))
        index += 2 if i == last_conv else 1  # IdentityLayer('initial_conv') after the last conv
    for g, blocks in enumerate(encoder.block_groups):
        for b, block in enumerate(blocks):
            names.update(_block(f"resnet_model/block_groups/{g}/layers/{b}", block))
    for j, linear in enumerate(model.projection_head.linear_layers):
        names.update(_linear(f"_projection_head/linear_layers/{j}", linear))
    if model.supervised_head is not None:
        names.update(_linear("supervised_head/linear_layer", model.supervised_head))
    return names


def _ratio(pairs, floor, usual):
    """The ratio r with max(int(filters * r), floor) == width for every (filters, width) pair, as
    the official SK and SE layers size their reductions; `usual` when the shapes allow it."""
    lo, hi = 0.0, float("inf")
    for filters, width in pairs:
        if width > floor:
            lo, hi = max(lo, width / filters), min(hi, (width + 1) / filters)
        else:
            hi = min(hi, (floor + 1) / filters)
    candidates = [usual, 0.0625, 0.125, 0.25, 0.5, 1.0, lo * (1 + 1e-9)]
    for r in candidates:
        if r > 0 and all(max(int(f * r), floor) == w for f, w in pairs):
            return r
    raise ValueError(f"no ratio r gives max(int(filters * r), {floor}) for {sorted(pairs)[:3]}")


def official_architecture(shapes):
    """The network of an official checkpoint, from {path below model/: shape}, as a dict of tfssl
    Config fields plus 'cifar_stem', 'channels' and 'num_classes' (0: no supervised head). Raises
    ValueError naming what does not fit."""
    groups = {}
    for path in shapes:
        m = re.match(r"resnet_model/block_groups/(\d+)/layers/(\d+)/", path)
        if m:
            groups.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if sorted(groups) != [0, 1, 2, 3]:
        raise ValueError("it holds no official ResNet (resnet_model/block_groups/0..3)")
    bottleneck = any("/conv_relu_dropblock_layers/" in p for p in shapes)
    kind = "bottleneck" if bottleneck else "basic"
    counts = tuple(len(groups[g]) for g in range(4))
    depths = [d for d, spec in BLOCKS.items() if spec == (kind, counts)]
    if not depths:
        raise ValueError(f"its {kind} ResNet has {counts} blocks per group, not a known depth")
    body = "conv_relu_dropblock_layers" if bottleneck else "conv2d_bn_layers"

    def filters(g, b):
        return shapes[f"resnet_model/block_groups/{g}/layers/{b}/{body}/0/conv2d/kernel"][-1]

    stem = shapes["resnet_model/initial_conv_relu_max_pool/0/conv2d/kernel"]
    deep_stem = "resnet_model/initial_conv_relu_max_pool/2/conv2d/kernel" in shapes
    sk, se = [], []
    for g, blocks in groups.items():
        for b in blocks:
            prefix = f"resnet_model/block_groups/{g}/layers/{b}/"
            for path, shape in shapes.items():
                if path.startswith(prefix) and path.endswith("/conv2d_0/kernel"):
                    sk.append((filters(g, b), shape[-1]))
                if path.startswith(prefix) and path.endswith("/se_reduce/kernel"):
                    se.append((filters(g, b), shape[-1]))
    layers = sorted({int(m.group(1)) for p in shapes for m in [PROJECTION_LAYER.match(p)] if m})
    if layers != list(range(len(layers))):
        raise ValueError(f"its projection head has layers {layers}, not 0..n-1")
    head = shapes.get("supervised_head/linear_layer/dense/kernel")
    return dict(
        architecture="resnet",
        resnet_depth=depths[0],
        width_multiplier=filters(0, 0) / 64,
        sk_ratio=_ratio(sk, SK_MIN_DIM, 0.0625) if sk else 0.0,
        se_ratio=_ratio(se, 1, 0.25) if se else 0.0,
        proj_head_mode="nonlinear" if layers else "none",
        num_proj_layers=max(len(layers), 1),
        proj_out_dim=(
            shapes[f"_projection_head/linear_layers/{layers[-1]}/dense/kernel"][-1]
            if layers
            else 128
        ),
        cifar_stem=stem[0] == 3 and not deep_stem,
        channels=stem[2],
        num_classes=head[-1] if head else 0,
    )
