"""RotNet (Gidaris et al. 2018): predict which of 0, 90, 180 or 270 degrees an image was rotated
by, with all four rotations of every image in the same batch, as the paper trains."""

import tensorflow as tf

from tfssl.data.pretext import rotate_all_four
from tfssl.losses.supervised import accuracy, cross_entropy
from tfssl.methods.pretext import PretextTask
from tfssl.models.pretext import ClassifierHead


class RotationPretrain(PretextTask):
    figure_file = "rotation_predictions.png"
    figure_examples = 6

    def build_pretext(self):
        head = ClassifierHead(4, self.cfg.batch_norm_decay, self.synchronized, name="rotation")
        return self.build_on(head, [self.model.encoder.num_features])

    def train_dataset(self, input_context, start_step):
        return self.data.train_batches(
            self.plain_view, self.cfg.train_batch_size, "all", input_context, start_step
        )

    def loss(self, batch):
        images, labels = batch
        rotated, angles = rotate_all_four(images)
        features = self.model.encoder(rotated, training=True)
        logits = self.pretext(features, training=True)
        loss = cross_entropy(angles, logits)
        metrics = {"pretext_loss": loss, "pretext_acc": accuracy(angles, logits)}
        upright = features[: tf.shape(images)[0]]  # rotation 0 comes first
        return self.with_linear_eval(loss, metrics, upright, labels)

    def summary_images(self, batch):
        return tf.concat(tf.split(rotate_all_four(batch[0][:8])[0], 4), axis=2)

    def predict_angles(self, images):
        """(4B, H, W, C) rotated images, (4B,) true and (4B,) predicted rotation classes."""
        rotated, angles = rotate_all_four(images)
        logits = self.pretext(self.model.encoder(rotated, training=False), training=False)
        return rotated, angles, tf.argmax(logits, -1, output_type=tf.int32)

    def write_figures(self):
        from tfssl import plots_pretext

        images, _ = self.figure_batch()
        rotated, angles, predicted = (t.numpy() for t in self.predict_angles(images))
        count = len(images)
        rows, captions, correct = [], [], []
        for k in range(4):
            block = slice(k * count, (k + 1) * count)
            rows.append((f"rotated {90 * k}°", rotated[block]))
            captions.append([f"predicted {90 * p}°" for p in predicted[block]])
            correct.append(predicted[block] == angles[block])
        plots_pretext.image_rows(
            self.figure_path(),
            rows,
            "RotNet: each test image at the four rotations, with the predicted angle",
            captions,
            correct,
        )
