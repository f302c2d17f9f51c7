"""The pretext tasks' inputs and targets as pure functions: rotations, jigsaw tiles and their
permutation set, inpainting masks, and image patches with MAE's random masking.

Images are float (H, W, C) or (B, H, W, C) in [0, 1]; seeds are stateless shape-[2] tensors.
"""

import itertools
import json
import os

import numpy as np
import tensorflow as tf

#: Noroozi & Favaro cut 64-pixel tiles from 75-pixel grid cells (a gap of 11 px on average).
TILE_FRACTION = 64 / 75
PERMUTATIONS_FILE = "jigsaw_permutations.json"


# --- rotation (Gidaris et al. 2018) ---
def rotate_all_four(images):
    """(4B, H, W, C) images and (4B,) labels: the batch rotated by 0, 90, 180 and 270 degrees
    counterclockwise (np.rot90 with k = label), one block of B per angle."""
    batch = tf.shape(images)[0]
    rotated = tf.concat([tf.image.rot90(images, k) for k in range(4)], 0)
    labels = tf.repeat(tf.range(4, dtype=tf.int32), batch)
    return rotated, labels


# --- jigsaw (Noroozi & Favaro 2016) ---
def hamming_permutations(count, num_items=9, seed=0):
    """`count` permutations of range(num_items), chosen greedily for large Hamming distance.

    The first is drawn at random (numpy, `seed`); each next one is, among those not chosen yet,
    the one farthest from the chosen set: largest minimum Hamming distance to it, then (ties)
    largest summed distance, the criterion of Noroozi & Favaro's Algorithm 1, then the lowest
    index in lexicographic order. The authors' greedy takes the summed distance alone, which for
    100 of 9! permutations leaves pairs only 2 positions apart; this keeps every pair >= 6 apart.
    Returns an int32 array (count, num_items)."""
    candidates = np.array(list(itertools.permutations(range(num_items))), np.int8)
    if not 1 <= count <= len(candidates):
        raise ValueError(f"count must be 1..{len(candidates)}, not {count}")
    index = int(np.random.default_rng(seed).integers(len(candidates)))
    chosen = [index]
    columns = np.ascontiguousarray(candidates.T)
    nearest = np.full(len(candidates), num_items + 1, np.int64)
    summed = np.zeros(len(candidates), np.int64)
    for _ in range(count - 1):
        distance = np.zeros(len(candidates), np.int64)
        for position, column in enumerate(columns):
            distance += column != candidates[index, position]
        nearest = np.minimum(nearest, distance)
        summed += distance
        index = int(np.argmax(nearest * (num_items * count + 1) + summed))
        chosen.append(index)
    return candidates[chosen].astype(np.int32)


def load_or_make_permutations(run_dir, count, seed, writer=True):
    """The run's permutation set: read from run_dir/PERMUTATIONS_FILE, else made and (by the
    writer) saved there, so a resumed or restored run classifies against the same set."""
    path = os.path.join(run_dir, PERMUTATIONS_FILE)
    if os.path.exists(path):
        with open(path) as f:
            saved = np.array(json.load(f)["permutations"], np.int32)
        if len(saved) == count:
            return saved
    permutations = hamming_permutations(count, seed=seed)
    if writer:
        os.makedirs(run_dir, exist_ok=True)
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "w") as f:
            json.dump({"seed": seed, "permutations": permutations.tolist()}, f)
        os.replace(partial, path)
    return permutations


def jigsaw_geometry(size, grid=3):
    """(cell, tile, margin): grid cells of `cell` pixels, centred (leaving `margin` at the top and
    left), from each of which one `tile`-pixel tile is cut."""
    cell = size // grid
    tile = max(int(cell * TILE_FRACTION), 1)
    return cell, tile, (size - grid * cell) // 2


def extract_tiles(image, offsets, grid=3):
    """(grid², tile, tile, C) tiles of an (H, W, C) image, row by row: tile i lies in cell
    (i // grid, i % grid), shifted by offsets[i] = (dy, dx) in [0, cell - tile] inside it."""
    cell, tile, margin = jigsaw_geometry(image.shape[0], grid)
    tiles = []
    for i in range(grid * grid):
        top = margin + (i // grid) * cell + offsets[i, 0]
        left = margin + (i % grid) * cell + offsets[i, 1]
        tiles.append(image[top : top + tile, left : left + tile, :])
    return tf.stack(tiles)


def random_tile_offsets(size, seed, grid=3):
    """Random (grid², 2) offsets of each tile in its cell: the random gaps between tiles."""
    cell, tile, _ = jigsaw_geometry(size, grid)
    return tf.random.stateless_uniform([grid * grid, 2], seed, 0, cell - tile + 1, tf.int32)


def normalize_tiles(tiles, epsilon=1e-3):
    """Each tile and channel to zero mean and unit standard deviation (no shortcut through
    low-level statistics shared by neighbouring tiles)."""
    mean, variance = tf.nn.moments(tiles, axes=[-3, -2], keepdims=True)
    return (tiles - mean) / tf.sqrt(variance + epsilon)


def shuffle_tiles(tiles, permutation):
    """Tiles in puzzle order: position k holds tile permutation[k]."""
    return tf.gather(tiles, permutation)


# --- context encoder (Pathak et al. 2016) ---
def center_mask(size):
    """(size, size, 1) float mask, 1 on the central square of side size // 2 (a quarter of the
    image, as the paper's 64 of 128 pixels)."""
    side = size // 2
    start = (size - side) // 2
    mask = np.zeros([size, size, 1], np.float32)
    mask[start : start + side, start : start + side] = 1.0
    return tf.constant(mask)


def random_block_mask(size, seed, fraction=0.25, blocks=8):
    """(size, size, 1) float mask of random square blocks: the image is cut into a grid of about
    `blocks` x `blocks` cells of ceil(size / blocks) pixels, and round(fraction * cells) of them,
    chosen at random, are masked (the paper's random blocks; exactly `fraction` of the image when
    the cells tile it)."""
    cell = -(-size // blocks)
    cells = -(-size // cell)
    count = int(round(fraction * cells * cells))
    noise = tf.random.stateless_uniform([cells * cells], seed)
    chosen = tf.math.top_k(noise, count).indices
    grid = tf.scatter_nd(chosen[:, None], tf.ones([count]), [cells * cells])
    grid = tf.reshape(grid, [cells, 1, cells, 1])
    mask = tf.reshape(tf.tile(grid, [1, cell, 1, cell]), [cells * cell, cells * cell])
    return mask[:size, :size, None]


def apply_mask(image, mask, fill=0.5):
    """The image with its masked pixels replaced by `fill`."""
    return image * (1.0 - mask) + fill * mask


# --- masked autoencoder (He et al. 2022) ---
def patchify(images, patch):
    """(B, H, W, C) -> (B, N, patch * patch * C): patches row by row, each flattened in (row,
    column, channel) order."""
    _, height, width, channels = images.shape
    rows, cols = height // patch, width // patch
    x = tf.reshape(images, [-1, rows, patch, cols, patch, channels])
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return tf.reshape(x, [-1, rows * cols, patch * patch * channels])


def unpatchify(patches, patch, size, channels):
    """The inverse of patchify for square (size, size, channels) images."""
    cells = size // patch
    x = tf.reshape(patches, [-1, cells, cells, patch, patch, channels])
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return tf.reshape(x, [-1, size, size, channels])


def random_masking(noise, mask_ratio):
    """MAE's per-image random masking from uniform noise (B, N): the patches with the smallest
    noise are kept. Returns (keep (B, K) indices of the kept patches in increasing noise order,
    mask (B, N) with 1 on removed patches, restore (B, N): the inverse of the noise order),
    K = int(N * (1 - mask_ratio))."""
    num_patches = noise.shape[-1]
    num_kept = max(int(num_patches * (1 - mask_ratio)), 1)
    order = tf.argsort(noise, axis=-1, stable=True)
    restore = tf.argsort(order, axis=-1, stable=True)
    keep = order[:, :num_kept]
    removed = tf.cast(tf.range(num_patches) >= num_kept, tf.float32)
    mask = tf.gather(removed, restore)
    return keep, mask, restore
