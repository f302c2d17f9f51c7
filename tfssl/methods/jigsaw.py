"""Jigsaw puzzles (Noroozi & Favaro 2016): cut a 3x3 grid of tiles with random gaps between them,
shuffle them by one of P permutations chosen for large Hamming distance, and classify which.

Every tile goes through the same encoder (shared weights); a context-free head joins the nine
tiles' features in puzzle order. Each tile is normalised on its own, and colour images are turned
gray 30% of the time, so that low-level statistics and chromatic aberration give nothing away. The
permutation set is saved in the run directory (jigsaw_permutations.json).
"""

import numpy as np
import tensorflow as tf

from tfssl.data import augment
from tfssl.data.pretext import (
    extract_tiles,
    jigsaw_geometry,
    load_or_make_permutations,
    normalize_tiles,
    random_tile_offsets,
    shuffle_tiles,
)
from tfssl.losses.supervised import accuracy, cross_entropy
from tfssl.methods.pretext import PretextTask
from tfssl.models.pretext import JigsawHead

GRAYSCALE_PROBABILITY = 0.3


class JigsawPretrain(PretextTask):
    # The encoder's batch-norm averages mix tile and whole-image statistics: re-estimate them on
    # whole images before the final eval (and for fine-tuning).
    defaults = dict(PretextTask.defaults, bn_recalibration_batches=20)
    figure_file = "jigsaw_predictions.png"
    figure_examples = 6

    def __init__(self, cfg, data, num_replicas=1):
        super().__init__(cfg, data, num_replicas)
        self.permutations = load_or_make_permutations(
            data.run_dir, cfg.jigsaw_permutations, cfg.seed
        )
        self.tile_size = jigsaw_geometry(data.image_size)[1]

    def build_pretext(self):
        head = JigsawHead(
            len(self.permutations),
            bn_momentum=self.cfg.batch_norm_decay,
            synchronized=self.synchronized,
            name="jigsaw",
        )
        return self.build_on(head, [9, self.model.encoder.num_features])

    def puzzle(self, image, seed):
        """(normalised shuffled tiles (9, t, t, C), permutation index) of one image."""
        offset_seed, permutation_seed = augment.split_seed(seed, 2)
        index = tf.random.stateless_uniform(
            [], permutation_seed, 0, len(self.permutations), tf.int32
        )
        tiles = extract_tiles(image, random_tile_offsets(self.data.image_size, offset_seed))
        shuffled = shuffle_tiles(tiles, tf.gather(tf.constant(self.permutations), index))
        return normalize_tiles(shuffled), index

    def train_dataset(self, input_context, start_step):
        def view(image, seed):
            crop_seed, gray_seed, puzzle_seed = augment.split_seed(seed, 3)
            image = self.plain_view(image, crop_seed)
            if image.shape[-1] == 3:
                image = augment.apply_with_probability(
                    augment.to_grayscale, GRAYSCALE_PROBABILITY, image, gray_seed
                )
            tiles, index = self.puzzle(image, puzzle_seed)
            return {"tiles": tiles, "permutation": index, "image": image}

        return self.data.train_batches(
            view, self.cfg.train_batch_size, "all", input_context, start_step
        )

    def puzzle_logits(self, tiles, training):
        """(B, 9, t, t, C) puzzles -> (B, P) permutation logits."""
        shape = tf.shape(tiles)
        flat = tf.reshape(tiles, [-1, self.tile_size, self.tile_size, tiles.shape[-1]])
        features = self.model.encoder(flat, training=training)
        features = tf.reshape(features, [shape[0], 9, features.shape[-1]])
        return self.pretext(features, training=training)

    def loss(self, batch):
        inputs, labels = batch
        target = inputs["permutation"]
        logits = self.puzzle_logits(inputs["tiles"], training=True)
        loss = cross_entropy(target, logits)
        metrics = {"pretext_loss": loss, "pretext_acc": accuracy(target, logits)}
        if self.model.supervised_head is None:
            return loss, metrics
        features = self.model.encoder(inputs["image"], training=True)
        return self.with_linear_eval(loss, metrics, features, labels)

    def summary_images(self, batch):
        return batch[0]["image"][:8]

    def write_figures(self):
        from tfssl import plots_pretext

        images, _ = self.figure_batch()
        seeds = [tf.constant([self.cfg.seed, 1000 + i], tf.int64) for i in range(len(images))]
        puzzles, truth, shown = [], [], []
        for image, seed in zip(images, seeds):
            tiles, index = self.puzzle(image, seed)
            puzzles.append(tiles)
            truth.append(int(index))
            offsets = random_tile_offsets(self.data.image_size, augment.split_seed(seed, 2)[0])
            raw = extract_tiles(image, offsets).numpy()  # the same tiles, not normalised
            shown.append(raw[self.permutations[int(index)]])
        predicted = np.argmax(self.puzzle_logits(tf.stack(puzzles), False).numpy(), -1)
        solved = []
        for tiles, p in zip(shown, predicted):  # put tile k back where permutation p says
            back = np.empty_like(tiles)
            back[self.permutations[p]] = tiles
            solved.append(plots_pretext.mosaic(back))
        plots_pretext.image_rows(
            self.figure_path(),
            [
                ("original", images.numpy()),
                ("shuffled tiles", [plots_pretext.mosaic(t) for t in shown]),
                ("solved by the\npredicted permutation", solved),
            ],
            f"Jigsaw: {len(self.permutations)} permutations; the puzzle's true and predicted "
            "permutation",
            [None, [f"true #{t}" for t in truth], [f"predicted #{p}" for p in predicted]],
            [None, None, [p == t for p, t in zip(predicted, truth)]],
        )
