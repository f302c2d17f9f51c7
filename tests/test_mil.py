"""Multiple-instance learning: poolings, padding, the MNIST-bags generator, bag folders, training,
early stopping, the attention outputs, export and a SimCLR encoder (tfssl/methods/mil.py)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import tiny_config
from tfssl import jobs, restore
from tfssl.config import Config
from tfssl.data.bags import BagData, FolderBagsSource, validation_split
from tfssl.data.mnist_bags import TEST_SEED, MnistBagsSource, _digits, generate_bags
from tfssl.errors import ConfigError, DataError
from tfssl.losses.mil import bag_nll, roc_auc
from tfssl.models.mil import POOLINGS, MILModel, MILPooling
from tfssl.train import launch

SIZE = 16


def mil_config(**overrides):
    values = dict(
        mode="mil",
        train_batch_size=4,
        eval_batch_size=8,
        learning_rate=2e-3,
        train_epochs=10,
        mil_patience=0,
        steps_per_loop=8,
        precision="float32",  # compared with float32 references (as tiny_config)
        log_every_secs=1e9,
    )
    return Config.for_job({**values, **overrides})


def instance_image(rng, key):
    """A 16 px noise image; a key instance also holds a bright square."""
    image = rng.uniform(0, 70, (SIZE, SIZE, 1))
    if key:
        y, x = rng.integers(0, SIZE - 6, 2)
        image[y : y + 6, x : x + 6] = 230
    return image.astype(np.uint8)


def write_bags(root, num_bags, seed, split=None):
    """Bags of 2-6 noise images; positive bags hold one or two key images."""
    rng = np.random.default_rng(seed)
    for b in range(num_bags):
        positive = b % 2
        size = int(rng.integers(2, 7))
        keys = set(rng.choice(size, int(rng.integers(1, 3)), replace=False)) if positive else ()
        directory = os.path.join(root, *([split] if split else []), ["neg", "pos"][positive])
        os.makedirs(os.path.join(directory, f"bag{b:03d}"))
        for i in range(size):
            image = instance_image(rng, i in keys)[..., 0]
            Image.fromarray(image).save(os.path.join(directory, f"bag{b:03d}", f"{i}.png"))


@pytest.fixture(scope="module")
def bag_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("bags"))
    write_bags(root, 40, 0, "train")
    write_bags(root, 12, 1, "test")
    return root


def numpy_pooling(layer, h, mask):
    """The pooling formulas of Ilse et al. (2018) in numpy, with the layer's weights."""
    h = h.astype(np.float64)
    if layer.pooling == "max":
        masked = np.where(mask[..., None], h, -np.inf)
        weights = np.zeros(mask.shape)
        for b, n, dim in np.ndindex(*h.shape):  # credit per dimension, split between ties
            top = masked[b, :, dim] == masked[b, :, dim].max()
            weights[b, n] += top[n] / top.sum() / h.shape[2]
        return masked.max(1), weights
    if layer.pooling == "mean":
        weights = mask / mask.sum(1, keepdims=True)
    else:
        hidden = np.tanh(h @ layer.V.kernel.numpy() + layer.V.bias.numpy())
        if layer.pooling == "gated_attention":
            gate = h @ layer.U.kernel.numpy() + layer.U.bias.numpy()
            hidden = hidden / (1 + np.exp(-gate))
        scores = (hidden @ layer.w.kernel.numpy())[..., 0]
        scores = np.where(mask, scores, -np.inf)
        weights = np.exp(scores - scores.max(1, keepdims=True))
        weights /= weights.sum(1, keepdims=True)
    return np.einsum("bn,bnl->bl", weights, h), weights


@pytest.mark.parametrize("pooling", POOLINGS)
def test_pooling_matches_numpy_and_ignores_padding(pooling):
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 5, 6)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
    h[~mask] = 0.0  # padded embeddings are zeros (MILModel scatters real ones only)
    h[0, 1:3, 0] = h[0, 3, 0] = 9.0  # a three-way tie for one dimension's maximum
    layer = MILPooling(pooling, attention_dim=4)
    pooled, weights = layer(tf.constant(h), tf.constant(mask))
    want_pooled, want_weights = numpy_pooling(layer, h, mask)
    np.testing.assert_allclose(pooled.numpy(), want_pooled, atol=1e-5)
    np.testing.assert_allclose(weights.numpy(), want_weights, atol=1e-6)
    assert np.all(weights.numpy()[~mask] == 0.0)  # exactly zero, not merely small
    np.testing.assert_allclose(weights.numpy().sum(1), 1.0, atol=1e-6)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_shuffling_instances_changes_no_output(pooling):
    tf.random.set_seed(1)
    model = MILModel(pooling=pooling, attention_dim=8)
    bag = tf.random.uniform([7, SIZE, SIZE, 1], seed=2)
    order = np.random.default_rng(3).permutation(7)
    out, shuffled = model(bag), model(tf.gather(bag, order))
    np.testing.assert_allclose(out["logits"], shuffled["logits"], atol=1e-5)
    np.testing.assert_allclose(out["attention"].numpy()[0, order], shuffled["attention"][0], 1e-5)


@pytest.mark.parametrize("encoder", ["lenet", "resnet"])
def test_padded_batches_equal_bags_alone(encoder):
    """Bags of 2, 5 and 3 instances in one batch padded to 7, and padded further to 9: the same
    outputs as each bag alone (ResNet: also with batch norm in training mode, whose statistics
    must not see padding), and padded instances weigh exactly zero."""
    tf.random.set_seed(0)
    resnet = dict(depth=18, width_multiplier=0.0625, cifar_stem=True)
    model = MILModel(encoder=encoder, encoder_config=resnet, pooling="gated_attention")
    sizes = [2, 5, 3]
    bags = [tf.random.uniform([n, SIZE, SIZE, 1], seed=n) for n in sizes]

    def batch(width):
        padding = [[[0, width - len(b)], [0, 0], [0, 0], [0, 0]] for b in bags]
        instances = tf.stack([tf.pad(b, p) for b, p in zip(bags, padding)])
        mask = tf.sequence_mask(sizes, width)
        return {"instances": instances, "mask": mask}

    out7, out9 = model(batch(7)), model(batch(9))
    for b, bag in enumerate(bags):
        alone = model(bag)
        np.testing.assert_allclose(out7["logits"][b], alone["logits"][0], atol=1e-5)
        np.testing.assert_allclose(out7["attention"][b, : sizes[b]], alone["attention"][0], 1e-5)
    assert np.all(out9["attention"].numpy()[~tf.sequence_mask(sizes, 9).numpy()] == 0.0)
    if encoder == "resnet":  # training-mode batch norm: same real instances, same statistics
        train7, train9 = model(batch(7), training=True), model(batch(9), training=True)
        np.testing.assert_allclose(train7["logits"], train9["logits"], atol=1e-5)


def test_mnist_bags_generator_statistics_follow_the_flags():
    digits = np.random.default_rng(0).integers(0, 10, 30000)
    args = dict(num_bags=4000, target=9, mean=10.0, std=2.0, positive_fraction=0.5, seed=4)
    indices, splits, labels, keys = generate_bags(digits, **args)
    sizes = np.diff(splits)
    assert abs(sizes.mean() - 10.0) < 0.1
    assert abs(sizes.std() - np.sqrt(4 + 1 / 12)) < 0.1  # N(10, 2) rounded: + 1/12 variance
    assert labels.sum() == 2000  # exactly the asked share
    np.testing.assert_array_equal(keys, digits[indices] == 9)
    per_bag = np.add.reduceat(keys, splits[:-1])
    assert np.all(per_bag[labels == 1] >= 1) and np.all(per_bag[labels == 0] == 0)
    again = generate_bags(digits, **args)
    np.testing.assert_array_equal(again[0], indices)  # seeded
    assert not np.array_equal(generate_bags(digits, **{**args, "seed": 5})[0][:50], indices[:50])
    small = np.diff(generate_bags(digits, **{**args, "mean": 1.0, "std": 3.0})[1])
    clipped = 0.5 * (1 + math.erf(0.5 / 3 / math.sqrt(2)))  # P(N(1, 3) < 1.5): size 1
    assert small.min() == 1 and abs(np.mean(small == 1) - clipped) < 0.025
    # Bags drawn at random: positive at the rate 1 - (1 - p)^n predicts for their sizes.
    _, splits, labels, _ = generate_bags(digits, **{**args, "positive_fraction": 0.0})
    expected = 1 - (1 - np.mean(digits == 9)) ** np.diff(splits)
    assert abs(labels.mean() - expected.mean()) < 0.025


def test_mnist_bags_source(mnist_data_dir):
    from tfssl.data.bags import BagOptions

    options = BagOptions(mnist_data_dir, seed=3, test_bags=60, bag_mean=6.0, bag_std=1.0)
    source = MnistBagsSource("", options)
    test = source.bags("test")
    assert len(test) == 60 and test.images.shape[1:] == (28, 28, 1)
    _, labels = _digits("mnist", mnist_data_dir, "test")
    np.testing.assert_array_equal(test.instance_labels, labels[test.instance_ids] == 9)
    other_seed = MnistBagsSource("", BagOptions(**{**vars(options), "seed": 4})).bags("test")
    np.testing.assert_array_equal(other_seed.instance_ids, test.instance_ids)  # fixed test bags
    assert TEST_SEED != options.seed


def test_bag_folders_both_layouts_and_validation_split(bag_root, tmp_path):
    flat = str(tmp_path / "flat")
    write_bags(flat, 10, 5)
    source = FolderBagsSource(flat)
    assert source.info.split_sizes == {"train": 10} and source.info.class_names == ("neg", "pos")
    split = FolderBagsSource(bag_root)
    assert split.info.split_sizes == {"test": 12, "train": 40}
    fit, held = validation_split(np.array([0] * 20 + [1] * 6), 0.25, seed=0)
    assert len(held) == 5 + 2 and len(set(fit) | set(held)) == 26  # per class, rounded
    cfg = mil_config(dataset=f"folder:{bag_root}", mil_val_fraction=0.25, model_dir=str(tmp_path))
    data = BagData(cfg, str(tmp_path))
    assert data.num_examples() == 30 and len(data.bags("validation")) == 10
    test = data.bags("test")
    seen = 0
    for batch in data.eval_batches("test", 5):
        mask = batch["mask"].numpy()
        for b in range(len(mask)):
            n = test.sizes[seen]
            assert mask[b].sum() == n and not mask[b, n:].any()
            first = np.asarray(Image.open(test.records[test.row_splits[seen]]))
            np.testing.assert_allclose(batch["instances"][b, 0, ..., 0] * 255, first, atol=1e-3)
            assert np.all(batch["instances"].numpy()[b, n:] == 0)
            seen += 1
    assert seen == 12
    with pytest.raises(DataError, match="reads bags"):
        BagData(mil_config(dataset="mnist"), str(tmp_path))


def test_bag_likelihood_and_auc_against_numpy():
    logits = np.array([[2.0], [-1.0], [0.3]], np.float32)
    labels = np.array([1, 0, 0])
    theta = 1 / (1 + np.exp(-logits[:, 0]))
    want = -np.mean(labels * np.log(theta) + (1 - labels) * np.log(1 - theta))
    np.testing.assert_allclose(bag_nll(labels, logits), want, rtol=1e-6)
    logits3 = np.array([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]], np.float32)
    softmax = np.exp(logits3) / np.exp(logits3).sum(1, keepdims=True)
    np.testing.assert_allclose(bag_nll([1, 2], logits3), -np.log(softmax[[0, 1], [1, 2]]).mean())
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 200), np.round(rng.normal(size=200), 1)  # with ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_k_classes_softmax_and_macro_auc():
    from sklearn.metrics import roc_auc_score

    from tfssl.losses.mil import bag_probabilities, macro_auc

    model = MILModel(num_classes=3, pooling="mean")
    out = model(tf.random.uniform([4, SIZE, SIZE, 1], seed=0))
    assert out["logits"].shape == (1, 3)
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(60, 3)).astype(np.float32), np.arange(60) % 3
    probabilities = bag_probabilities(logits).numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-6)
    want = roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert macro_auc(labels, probabilities) == pytest.approx(want, abs=1e-9)


def test_mil_trains_evaluates_resumes_and_exports(bag_root, tmp_path):
    run_dir = str(tmp_path / "run")
    cfg = mil_config(dataset=f"folder:{bag_root}", model_dir=run_dir, mil_patience=6)
    result = launch.train(cfg)
    assert result["eval"]["num_bags"] == 12 and result["eval"]["auc"] >= 0.9
    saved = json.load(open(os.path.join(run_dir, "attention_test.json")))
    test = FolderBagsSource(bag_root).bags("test")
    assert [b["name"] for b in saved["bags"]] == list(test.names)
    for bag, size in zip(saved["bags"], test.sizes):
        assert len(bag["attention"]) == size and sum(bag["attention"]) == pytest.approx(1, 1e-5)
    assert os.path.exists(os.path.join(run_dir, "attention_bags.png"))
    assert launch.train(cfg)["global_step"] == result["global_step"]  # resumed: nothing to do
    export_dir = str(tmp_path / "exported")
    jobs.run(tiny_config(mode="export", checkpoint=run_dir, export_dir=export_dir))
    method = restore.load_trained(run_dir)[0]
    rng = np.random.default_rng(7)
    bags = [np.stack([instance_image(rng, i == 1) for i in range(n)]) for n in (3, 9)]
    want = [method.export_outputs(tf.image.convert_image_dtype(b, tf.float32)) for b in bags]
    for i, bag in enumerate(bags):
        np.save(tmp_path / f"bag{i}.npy", bag)
    script = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "outs = [m.serve(np.load(f'bag{i}.npy')) for i in range(2)]\n"
        "json.dump({'p': [o['bag_probability'].numpy().tolist() for o in outs],\n"
        "           'a': [o['attention'].numpy().tolist() for o in outs],\n"
        "           'tfssl': 'tfssl' in sys.modules}, open('out.json', 'w'))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, export_dir],
        check=True,
        cwd=str(tmp_path),
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )
    out = json.load(open(tmp_path / "out.json"))
    assert not out["tfssl"]
    for i in range(2):
        np.testing.assert_allclose(out["p"][i], want[i]["bag_probability"], atol=1e-5)
        np.testing.assert_allclose(out["a"][i], want[i]["attention"], atol=1e-5)
        assert len(out["a"][i]) == len(bags[i])


def test_simclr_encoder_loads_frozen_or_fine_tuned(bag_root, gray_folder, tmp_path):
    """A SimCLR run's encoder goes into the MIL model: frozen, it stays bit-identical through
    training; fine-tuned, it starts from the pretrained weights and gets gradients."""
    from tfssl.methods.mil import MIL

    pre = str(tmp_path / "pre")
    common = dict(dataset=f"folder:{gray_folder}", model_dir=pre, train_steps=1, eval_steps=1)
    launch.train(tiny_config(mode="pretrain", **common))
    pretrained = [v.numpy() for v in restore.load_trained(pre)[0].model.encoder.variables]
    with pytest.raises(ConfigError, match="mil_freeze_encoder"):
        mil_config(mil_freeze_encoder=True)
    common = dict(dataset=f"folder:{bag_root}", checkpoint=pre, train_steps=3, mil_patience=0)
    frozen_dir = str(tmp_path / "frozen")
    launch.train(mil_config(model_dir=frozen_dir, mil_freeze_encoder=True, **common))
    method = restore.load_trained(frozen_dir)[0]
    assert method.encoder_kind == "resnet"
    for variable, value in zip(method.model.encoder.variables, pretrained):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    cfg = launch.inherit_architecture(mil_config(model_dir=str(tmp_path / "ft"), **common))
    tuned = MIL(cfg, BagData(cfg, cfg.run_dir))
    tuned.build()
    tuned.initialize()
    for variable, value in zip(tuned.model.encoder.variables, pretrained):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    batch = next(iter(tuned.train_dataset(None, 0)))
    encoder = tuned.model.encoder.trainable_variables
    with tf.GradientTape() as tape:
        loss, _ = tuned.loss(batch)
    assert encoder and all(g is not None for g in tape.gradient(loss, encoder))
