"""The pretext tasks' transforms and losses against numpy: rotations, jigsaw permutations and tiles,
inpainting masks, patches and MAE masking, Lab colour, and the losses."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import assert_config_round_trip
from tfssl.data import lab
from tfssl.data import pretext as P
from tfssl.losses import pretext as losses
from tfssl.models.pretext import ClassifierHead, ConvDecoder, Discriminator, JigsawHead
from tfssl.models.vit import MAEDecoder, TransformerBlock, VisionTransformer

RNG = np.random.default_rng(0)


def test_all_four_rotations_match_np_rot90():
    images = RNG.uniform(size=(3, 6, 6, 2)).astype(np.float32)
    rotated, labels = P.rotate_all_four(tf.constant(images))
    assert labels.numpy().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for i, label in enumerate(labels.numpy()):
        expected = np.rot90(images[i % 3], k=label, axes=(0, 1))  # counterclockwise
        np.testing.assert_array_equal(rotated[i].numpy(), expected)


def pairwise_hamming(permutations):
    p = np.asarray(permutations)
    return (p[:, None, :] != p[None, :, :]).sum(-1)[np.triu_indices(len(p), 1)]


def test_permutation_set_is_far_apart_and_deterministic(tmp_path):
    chosen = P.hamming_permutations(100, seed=0)
    assert chosen.shape == (100, 9)
    assert all(sorted(p) == list(range(9)) for p in chosen.tolist())
    assert len({tuple(p) for p in chosen.tolist()}) == 100
    distances = pairwise_hamming(chosen)
    # the farthest-point greedy keeps every pair at least 6 of 9 positions apart; the mean is
    # near 9 * (1 - 1/9) = 8, that of random permutations
    assert distances.min() >= 6 and distances.mean() > 7.9
    saved = P.load_or_make_permutations(str(tmp_path), 100, 0)  # made again, written, read back
    np.testing.assert_array_equal(saved, chosen)
    assert not np.array_equal(P.hamming_permutations(5, seed=1), chosen[:5])
    assert (tmp_path / P.PERMUTATIONS_FILE).exists()
    np.testing.assert_array_equal(P.load_or_make_permutations(str(tmp_path), 100, 5), chosen)


def test_permutation_greedy_against_brute_force_on_five_items():
    """Each next permutation maximises (min distance, summed distance) to those before it."""
    chosen = P.hamming_permutations(12, num_items=5, seed=3)
    everything = [tuple(p) for p in itertools.permutations(range(5))]
    picked = [tuple(chosen[0])]
    for _ in range(11):
        rest = [p for p in everything if p not in picked]

        def score(p):
            d = [sum(a != b for a, b in zip(p, q)) for q in picked]
            return (min(d), sum(d), -everything.index(p))

        picked.append(max(rest, key=score))
    assert [tuple(p) for p in chosen] == picked


@pytest.mark.parametrize("size", [28, 32])
def test_tiles_match_numpy_slicing(size):
    image = RNG.uniform(size=(size, size, 3)).astype(np.float32)
    cell = size // 3
    tile = int(cell * 64 / 75)
    margin = (size - 3 * cell) // 2
    offsets = P.random_tile_offsets(size, tf.constant([1, 2])).numpy()
    assert offsets.min() >= 0 and offsets.max() <= cell - tile
    tiles = P.extract_tiles(tf.constant(image), tf.constant(offsets)).numpy()
    assert tiles.shape == (9, tile, tile, 3)
    for i in range(9):
        top = margin + (i // 3) * cell + offsets[i, 0]
        left = margin + (i % 3) * cell + offsets[i, 1]
        np.testing.assert_array_equal(tiles[i], image[top : top + tile, left : left + tile])
    permutation = np.array([4, 0, 8, 2, 6, 1, 3, 7, 5])
    shuffled = P.shuffle_tiles(tf.constant(tiles), permutation).numpy()
    np.testing.assert_array_equal(shuffled, tiles[permutation])
    normalized = P.normalize_tiles(tf.constant(tiles), epsilon=0.0).numpy()
    mean = tiles.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(
        normalized, (tiles - mean) / tiles.std(axis=(1, 2), keepdims=True), atol=1e-4
    )


def test_inpainting_masks():
    center = P.center_mask(28).numpy()[..., 0]
    expected = np.zeros((28, 28))
    expected[7:21, 7:21] = 1
    np.testing.assert_array_equal(center, expected)
    for size, ratio in ((32, 0.25), (28, 12 * 16 / 784)):
        first = P.random_block_mask(size, tf.constant([0, 1])).numpy()[..., 0]
        assert first.shape == (size, size) and set(np.unique(first)) == {0.0, 1.0}
        assert first.mean() == pytest.approx(ratio)
        blocks = first[: size // 4 * 4].reshape(size // 4, 4, size // 4, 4)
        assert (blocks.min(axis=(1, 3)) == blocks.max(axis=(1, 3))).all()  # whole 4x4 blocks
        np.testing.assert_array_equal(
            P.random_block_mask(size, tf.constant([0, 1])).numpy()[..., 0], first
        )
        assert not np.array_equal(P.random_block_mask(size, tf.constant([0, 2]))[..., 0], first)
    image = RNG.uniform(size=(28, 28, 1)).astype(np.float32)
    filled = P.apply_mask(image, P.center_mask(28)).numpy()
    np.testing.assert_allclose(filled, np.where(expected[..., None] == 1, 0.5, image))


def test_patches_match_numpy():
    images = RNG.uniform(size=(2, 8, 8, 3)).astype(np.float32)
    patches = P.patchify(tf.constant(images), 4).numpy()
    assert patches.shape == (2, 4, 48)
    for b, row, col in itertools.product(range(2), range(2), range(2)):
        block = images[b, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4]
        np.testing.assert_array_equal(patches[b, 2 * row + col], block.reshape(-1))
    np.testing.assert_array_equal(P.unpatchify(patches, 4, 8, 3).numpy(), images)


def test_random_masking_keeps_the_lowest_noise_patches():
    noise = RNG.uniform(size=(3, 49)).astype(np.float32)
    keep, mask, restore = (t.numpy() for t in P.random_masking(tf.constant(noise), 0.75))
    assert keep.shape == (3, 12)  # int(49 * 0.25)
    np.testing.assert_array_equal(keep, np.argsort(noise, axis=1)[:, :12])
    np.testing.assert_array_equal(mask.sum(1), [37, 37, 37])
    for b in range(3):
        expected = np.ones(49)
        expected[keep[b]] = 0
        np.testing.assert_array_equal(mask[b], expected)
        in_noise_order = np.argsort(noise[b])
        np.testing.assert_array_equal(in_noise_order[restore[b]], np.arange(49))


def reference_lab(rgb):
    """sRGB -> Lab with the CIE constants epsilon = 216/24389, kappa = 24389/27 (Lindbloom)."""
    c = np.asarray(rgb, np.float64)
    linear = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])  # fmt: skip
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


def test_lab_against_an_independent_formula_and_round_trip():
    known = {  # sRGB primaries and white under D65
        (1, 0, 0): (53.2408, 80.0925, 67.2032),
        (0, 1, 0): (87.7347, -86.1827, 83.1793),
        (0, 0, 1): (32.2970, 79.1875, -107.8602),
        (1, 1, 1): (100.0, 0.0, 0.0),
    }
    got = lab.rgb_to_lab(np.array(list(known), np.float32)).numpy()
    np.testing.assert_allclose(got, np.array(list(known.values())), atol=2e-3)
    rgb = RNG.uniform(size=(500, 3)).astype(np.float32)
    rgb[:20] *= 0.02  # the linear segment near black
    np.testing.assert_allclose(lab.rgb_to_lab(rgb).numpy(), reference_lab(rgb), atol=2e-3)
    np.testing.assert_allclose(lab.lab_to_rgb(lab.rgb_to_lab(rgb)).numpy(), rgb, atol=1e-4)
    gray = lab.luminance_input(lab.rgb_to_lab(rgb[None, None]))[0, 0].numpy()
    np.testing.assert_allclose(gray[:, 0], reference_lab(rgb)[:, 0] / 100, atol=2e-5)


def test_ab_bins_soft_encoding_and_rebalancing():
    bins = lab.ab_bins()
    assert 200 < len(bins) < 330 and np.all(bins % 10 == 0)
    ab = np.array([[3.0, -41.0], [-60.0, 77.0]], np.float32)
    indices, weights = (t.numpy() for t in lab.soft_encode(tf.constant(ab), bins))
    for row in range(2):
        distance = ((bins - ab[row]) ** 2).sum(1)
        nearest = np.argsort(distance, kind="stable")[:5]
        np.testing.assert_array_equal(np.sort(indices[row]), np.sort(nearest))
        assert indices[row, 0] == nearest[0]
        gaussian = np.exp(-distance[indices[row]] / (2 * 5.0**2))
        np.testing.assert_allclose(weights[row], gaussian / gaussian.sum(), rtol=1e-5)
    dense = lab.dense_targets(indices, weights, len(bins)).numpy()
    np.testing.assert_allclose(dense.sum(1), 1.0, rtol=1e-6)
    prior = RNG.uniform(size=len(bins)) ** 4
    w = lab.rebalancing_weights(prior, bins)
    kernel = np.exp(-((bins[:, None] - bins[None]) ** 2).sum(-1) / 50.0)
    smooth = kernel @ (prior / prior.sum())
    smooth /= smooth.sum()
    expected = 1 / (0.5 * smooth + 0.5 / len(bins))
    np.testing.assert_allclose(w, expected / (smooth * expected).sum(), rtol=1e-5)
    assert np.argmax(w) == np.argmin(smooth)  # rare colours weigh most
    np.testing.assert_allclose(lab.rebalancing_weights(prior, bins, mix=1.0), 1.0, rtol=1e-6)
    logits = np.full((1, len(bins)), -30.0, np.float32)
    logits[0, 7] = 30.0
    np.testing.assert_allclose(lab.annealed_mean(logits, bins).numpy()[0], bins[7], atol=1e-3)


def test_mae_loss_counts_only_masked_patches():
    target = RNG.normal(size=(2, 6, 12)).astype(np.float32)
    prediction = tf.Variable(RNG.normal(size=(2, 6, 12)).astype(np.float32))
    mask = np.array([[1, 0, 1, 0, 0, 1], [0, 0, 0, 1, 1, 1]], np.float32)
    with tf.GradientTape() as tape:
        loss = losses.mae_loss(prediction, target, mask, norm_pix_loss=True)
    normalized = (target - target.mean(-1, keepdims=True)) / np.sqrt(
        target.var(-1, keepdims=True) + 1e-6
    )
    per_patch = ((prediction.numpy() - normalized) ** 2).mean(-1)
    assert float(loss) == pytest.approx((per_patch * mask).sum() / mask.sum(), rel=1e-5)
    gradient = tape.gradient(loss, prediction).numpy()
    assert np.all(gradient[mask == 0] == 0) and np.all(np.abs(gradient[mask == 1]).sum(-1) > 0)
    raw = losses.mae_loss(prediction, target, mask, norm_pix_loss=False)
    raw_patch = ((prediction.numpy() - target) ** 2).mean(-1)
    assert float(raw) == pytest.approx((raw_patch * mask).sum() / mask.sum(), rel=1e-5)


def test_masked_l2_and_rebalanced_cross_entropy():
    a, b = RNG.uniform(size=(2, 2, 5, 5, 3)).astype(np.float32)
    mask = (RNG.uniform(size=(2, 5, 5, 1)) > 0.5).astype(np.float32)
    expected = ((a - b) ** 2 * mask).sum() / (mask.sum() * 3)
    assert float(losses.masked_l2(a, b, mask)) == pytest.approx(expected, rel=1e-5)
    logits = RNG.normal(size=(2, 3, 7)).astype(np.float32)
    indices = RNG.integers(0, 7, size=(2, 3, 2))
    weights = RNG.uniform(size=(2, 3, 2)).astype(np.float32)
    pixel_weights = RNG.uniform(size=(2, 3)).astype(np.float32)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_p, indices, -1)
    expected = np.mean(-(weights * picked).sum(-1) * pixel_weights)
    got = losses.rebalanced_soft_cross_entropy(logits, indices, weights, pixel_weights)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    real, fake = np.array([2.0, -1.0], np.float32), np.array([0.5, -3.0], np.float32)
    sigmoid = 1 / (1 + np.exp(-np.concatenate([real, fake])))
    expected = -np.log(sigmoid[:2]).mean() - np.log(1 - sigmoid[2:]).mean()
    assert float(losses.discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.generator_loss(fake)) == pytest.approx(-np.log(sigmoid[2:]).mean(), 1e-5)


def test_vit_embedding_masking_and_freezing():
    from tfssl.models.vit import sincos_position_embedding

    table = sincos_position_embedding(3, 8)  # 2 frequencies for rows and for columns
    omega = 1 / 10000 ** (np.arange(2) / 2)
    row, col = 5 // 3, 5 % 3  # token 5
    expected = np.concatenate(
        [np.sin(row * omega), np.cos(row * omega), np.sin(col * omega), np.cos(col * omega)]
    )
    np.testing.assert_allclose(table[5], expected, rtol=1e-6)
    vit = VisionTransformer(8, patch_size=4, depth=2, width=16, num_heads=2)
    images = tf.constant(RNG.uniform(size=(2, 8, 8, 1)), tf.float32)
    full = vit(images, return_endpoints=True)
    same = vit(images, return_endpoints=True, keep_indices=tf.constant([[0, 1, 2, 3]] * 2))
    np.testing.assert_allclose(same["tokens"], full["tokens"], atol=1e-5)
    np.testing.assert_allclose(full["final_avg_pool"], tf.reduce_mean(full["tokens"], 1), 1e-5)
    # attention is permutation-equivariant: the encoder output follows a permuted subset
    subset = vit(images, return_endpoints=True, keep_indices=tf.constant([[3, 1]] * 2))["tokens"]
    swapped = vit(images, return_endpoints=True, keep_indices=tf.constant([[1, 3]] * 2))["tokens"]
    np.testing.assert_allclose(subset.numpy()[:, ::-1], swapped, atol=1e-5)
    assert vit.num_patches == 4 and vit.num_features == 16
    frozen = VisionTransformer(
        8, patch_size=4, depth=4, width=16, num_heads=2, fine_tune_after_block=2
    )
    frozen(images)
    trainable = {v.path.split("/")[1] for v in frozen.trainable_variables}
    assert trainable == {"block2", "block3", "norm"}
    head = VisionTransformer(8, 4, 2, 16, 2, fine_tune_after_block=4)
    head(images)
    assert not head.trainable_variables


@pytest.mark.parametrize(
    "layer",
    [
        TransformerBlock(16, 2),
        VisionTransformer(8, 4, 2, 16, 2),
        MAEDecoder(8, 4, 1, 1, 16, 2),
        ClassifierHead(4),
        JigsawHead(10, 8, 16),
        ConvDecoder(16, 2, 8, 3),
        Discriminator(8, 2),
    ],
)
def test_pretext_layers_config_round_trip(layer):
    assert_config_round_trip(layer)
