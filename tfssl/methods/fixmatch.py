"""FixMatch (Sohn et al. 2020): learn the labels, and learn on a strongly augmented view of each
unlabeled image the class the network itself predicts, confidently, on a weak view of it.

Each step takes B labeled images (--train_batch_size) and mu B unlabeled ones (--unlabeled_ratio).
Labeled images get the weak view (flip where --use_flip allows it, translation by
--random_translate pixels, -1 = 12.5% of the image size, reflect-padded); each unlabeled image gets
a weak view and a strong one (a weak view, then RandAugment and Cutout: tfssl/data/randaugment.py).
All three go through the network in one batch, so batch norm sees them together, as in the
reference code. The loss is tfssl/losses/pseudo_label.py's fixmatch_loss: labeled cross-entropy plus
--unlabeled_loss_weight (lambda) times the cross-entropy of the strong views against the weak
views' argmax, for those whose probability reaches --confidence_threshold (tau).
--distribution_alignment scales the weak views' probabilities by the labeled class frequencies
over a running mean (momentum 0.999) of the predicted ones before thresholding (ReMixMatch).
--self_adaptive_threshold replaces tau by FreeMatch's thresholds, one per class, from running means
(momentum 0.999) of the weak views' confidence and class shares, updated with each batch before it
is thresholded (tfssl/losses/pseudo_label.py; FreeMatch's fairness loss is not included).

The optimizer is the paper's (SGD, Nesterov momentum 0.9, lr 0.03, weight decay 5e-4,
lr0 cos(7 pi k / 16 K)); an exponential moving average of all the weights (--ema_decay; batch-norm
statistics included, as the reference's EMA of every model variable) is the evaluated and exported
network. The trained network's accuracy is reported beside it (student_top_1_accuracy).

Logged for diagnosis only: mask_rate (the kept fraction of the unlabeled batch), pseudo_label_acc
(how often a kept pseudo-label is the image's true class) and unlabeled_acc (the weak views'
argmax against the true class, kept or not). The true labels never reach the loss. With
--self_adaptive_threshold also threshold (tau_t, the most predicted class's) and lowest_threshold.

--unlabeled_loss_weight=0 drops the unlabeled stream: the supervised baseline with the same
network, weak views, optimizer, schedule and EMA.
"""

import numpy as np
import tensorflow as tf

from tfssl.data import augment, randaugment
from tfssl.errors import ConfigError
from tfssl.losses import pseudo_label
from tfssl.losses.consistency import ema_decay, ema_update
from tfssl.losses.supervised import accuracy, cross_entropy
from tfssl.methods.mean_teacher import MeanTeacher

#: Momentum of the running mean of predictions that --distribution_alignment divides by.
ALIGNMENT_MOMENTUM = 0.999
#: Momentum of --self_adaptive_threshold's running means (FreeMatch's lambda).
THRESHOLD_MOMENTUM = 0.999


class FixMatch(MeanTeacher):
    job = "fixmatch"
    progress_metrics = (
        "loss",
        "unlabeled_loss",
        "mask_rate",
        "pseudo_label_acc",
        "unlabeled_acc",
        "threshold",  # --self_adaptive_threshold's tau_t
    )
    architectures = ("auto", "convlarge", "resnet")
    # The paper's optimizer and EMA; CPU-sized batches (16 + 7 x 16 images a step, the paper's 64
    # + 7 x 64) and run length (the paper's 2^20 steps take days on a GPU). ConvLarge at a quarter
    # width without dropout (WRN-28-2 in the paper has none).
    defaults = dict(
        optimizer="momentum",
        momentum=0.9,
        learning_rate=0.03,
        learning_rate_scaling="constant",
        lr_schedule="fixmatch_cosine",
        weight_decay=5e-4,
        warmup_epochs=0.0,
        train_batch_size=16,
        architecture="convlarge",
        width_multiplier=0.25,
        convlarge_dropout=0.0,
        use_flip=False,
        random_translate=-1,
        ema_decay=0.999,
        train_steps=10000,
        checkpoint_steps=1000,
    )

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if cfg.unlabeled_batch_size:
            raise ConfigError(
                "--mode=fixmatch sets its unlabeled batch as --unlabeled_ratio x "
                "--train_batch_size; leave --unlabeled_batch_size at 0"
            )
        if cfg.logit_distance_cost >= 0:
            raise ConfigError("--logit_distance_cost is Mean Teacher's; FixMatch has one head")
        fixed = type(cfg).__dataclass_fields__["confidence_threshold"].default
        if cfg.self_adaptive_threshold and cfg.confidence_threshold != fixed:
            raise ConfigError(
                "--self_adaptive_threshold learns the thresholds; drop --confidence_threshold"
            )
        if cfg.random_translate < -1:
            raise ConfigError(
                f"--random_translate={cfg.random_translate}: give pixels, or -1 for 12.5% of the "
                "image size"
            )

    @property
    def translate_pixels(self):
        shift = self.cfg.random_translate
        return int(round(0.125 * self.data.image_size)) if shift < 0 else shift

    def build(self):
        if self.translate_pixels >= self.data.image_size:
            raise ConfigError(
                f"--random_translate={self.cfg.random_translate} must be under the image size"
            )
        self.student = self._network("student")
        self.model = self._network("ema")  # evaluated and exported
        # Every variable, batch-norm statistics too: the EMA network never runs in training.
        self.ema_pairs = []
        for ema_var, student_var in zip(self.model.variables, self.student.variables):
            if ema_var.shape != student_var.shape:
                raise ValueError(f"{ema_var.path} and {student_var.path} do not pair up")
            ema_var.assign(student_var)  # a fresh EMA starts as the student; a resume restores it
            if "float" in str(ema_var.dtype):
                self.ema_pairs.append((ema_var, student_var))
        self._compiled_student_logits = None
        num_classes = self.data.info.num_classes
        self.prediction_mean = tf.Variable(
            tf.fill([num_classes], 1.0 / num_classes),
            trainable=False,
            aggregation=tf.VariableAggregation.MEAN,
            name="prediction_mean",
        )
        # --self_adaptive_threshold's running means, both starting at 1 / C.
        self.confidence = tf.Variable(
            1.0 / num_classes,
            trainable=False,
            aggregation=tf.VariableAggregation.MEAN,
            name="confidence",
        )
        self.class_shares = tf.Variable(
            tf.fill([num_classes], 1.0 / num_classes),
            trainable=False,
            aggregation=tf.VariableAggregation.MEAN,
            name="class_shares",
        )
        self.class_prior = None
        if self.cfg.distribution_alignment:
            labels = np.asarray(self.data.source.labels(self.cfg.train_split))
            counts = np.bincount(labels[self.data.labeled_indices], minlength=num_classes)
            self.class_prior = tf.constant(counts / counts.sum(), tf.float32)

    def checkpoint_items(self):
        items = {**super().checkpoint_items(), "prediction_mean": self.prediction_mean}
        if self.cfg.self_adaptive_threshold:  # only then: older runs' checkpoints still restore
            items.update(confidence=self.confidence, class_shares=self.class_shares)
        return items

    @property
    def uses_unlabeled(self):
        return self.cfg.unlabeled_loss_weight > 0

    @property
    def unlabeled_batch_size(self):
        return self.cfg.unlabeled_ratio * self.cfg.train_batch_size

    # --- data ---
    def weak_view(self, image, seed):
        """Flip (with --use_flip), then a reflect-padded shift of up to translate_pixels."""
        flip_seed, translate_seed = augment.split_seed(seed, 2)
        image = augment.eval_view(image, self.data.image_size)
        if self.cfg.use_flip:
            image = augment.random_flip(image, flip_seed)
        if self.translate_pixels:
            image = augment.random_translation(
                image, self.translate_pixels, translate_seed, self.cfg.translate_fill
            )
        return image

    def weak_and_strong_views(self, image, seed):
        weak_seed, base_seed, strong_seed = augment.split_seed(seed, 3)
        strong = randaugment.strong_view(
            self.weak_view(image, base_seed),
            strong_seed,
            self.cfg.randaugment_num_ops,
            self.cfg.cutout_fraction,
        )
        return self.weak_view(image, weak_seed), strong

    def train_dataset(self, input_context, start_step):
        """(labeled,) or (labeled, unlabeled) batches: (weak views, labels) and ((weak views,
        strong views), true labels, for the logged pseudo-label accuracy only)."""
        return self.two_stream_batches(
            self.weak_view, self.weak_and_strong_views, input_context, start_step
        )

    # --- the step ---
    def current_ema_decay(self):
        """min(1 - 1 / (step + 2), --ema_decay): early on, the plain mean of the weights so far."""
        return ema_decay(self.step, 0, self.cfg.ema_decay, self.cfg.ema_decay)

    def class_ratio(self, weak_logits):
        """Distribution alignment's p(y) / p~(y), after folding this batch into p~."""
        probs = pseudo_label.weak_probabilities(weak_logits)
        average = pseudo_label.running_mean(self.prediction_mean, probs, ALIGNMENT_MOMENTUM)
        self.prediction_mean.assign(average)
        return self.class_prior / average

    def adaptive_thresholds(self, weak_logits, class_ratio):
        """FreeMatch's per-class thresholds, after folding this batch into the running means."""
        probs = pseudo_label.weak_probabilities(weak_logits, class_ratio)
        momentum = THRESHOLD_MOMENTUM
        self.confidence.assign(
            pseudo_label.running_mean(self.confidence, tf.reduce_max(probs, -1), momentum)
        )
        self.class_shares.assign(pseudo_label.running_mean(self.class_shares, probs, momentum))
        return pseudo_label.self_adaptive_thresholds(self.confidence, self.class_shares)

    def loss(self, batch):
        cfg = self.cfg
        images, labels = batch[0]
        metrics = {"ema_decay": self.current_ema_decay()}
        if len(batch) == 1:
            logits = self.student(images, training=True)["logits"]
            loss = cross_entropy(labels, logits)
            metrics.update(supervised_loss=loss, supervised_acc=accuracy(labels, logits))
            return loss, metrics
        (weak, strong), true_labels = batch[1]
        num_labeled, num_unlabeled = images.shape[0], weak.shape[0]
        logits = self.student(tf.concat([images, weak, strong], 0), training=True)["logits"]
        labeled_logits = logits[:num_labeled]
        weak_logits = logits[num_labeled : num_labeled + num_unlabeled]
        ratio = self.class_ratio(weak_logits) if cfg.distribution_alignment else None
        threshold = cfg.confidence_threshold
        if cfg.self_adaptive_threshold:
            threshold = self.adaptive_thresholds(weak_logits, ratio)
            metrics.update(threshold=self.confidence, lowest_threshold=tf.reduce_min(threshold))
        loss, parts = pseudo_label.fixmatch_loss(
            labels,
            labeled_logits,
            weak_logits,
            logits[num_labeled + num_unlabeled :],
            threshold,
            cfg.unlabeled_loss_weight,
            ratio,
        )
        mask = parts["mask"]
        correct = tf.cast(
            tf.equal(parts["pseudo_labels"], tf.cast(true_labels, tf.int32)), tf.float32
        )
        metrics.update(
            supervised_loss=parts["supervised_loss"],
            unlabeled_loss=parts["unlabeled_loss"],
            supervised_acc=accuracy(labels, labeled_logits),
            mask_rate=tf.reduce_mean(mask),
            pseudo_label_acc=tf.reduce_sum(correct * mask) / tf.maximum(tf.reduce_sum(mask), 1.0),
            unlabeled_acc=tf.reduce_mean(correct),
        )
        return loss, metrics

    @tf.autograph.experimental.do_not_convert
    def after_update(self):
        """ema <- decay * ema + (1 - decay) * student, for every variable."""
        decay = self.current_ema_decay()
        for ema_var, student_var in self.ema_pairs:
            ema_var.assign(ema_update(ema_var, tf.cast(student_var, ema_var.dtype), decay))

    def summary_images(self, batch):
        images = batch[0][0][:8]
        if len(batch) > 1:
            weak, strong = batch[1][0]
            count = images.shape[0]
            images = tf.concat([images, weak[:count], strong[:count]], axis=2)
        return tf.clip_by_value(images, 0.0, 1.0)
