"""The k-NN monitor: a weighted k-nearest-neighbour classifier on frozen, L2-normalised features.

As in InstDisc (Wu et al. 2018) and the monitors of solo-learn and lightly: the bank holds the
features of the train images (the whole --train_split, or a fixed random --knn_bank_size of them),
and an eval image with unit feature q is scored per class c as

    score_c(q) = sum over the k bank rows b_j most similar to q (cosine) with label c
                 of exp(q.b_j / T)

(k = --knn_k, T = --knn_temperature); the prediction is the class of highest score. Features are
the encoder's final_avg_pool in inference mode. One pass encodes the bank and the eval split once:
on MNIST-sized data (60k + 10k images at 28 px) that is a small part of an epoch's training time.

While pretraining, KnnMonitor runs it every --knn_every_epochs and at the end; `--mode=eval --knn`
runs it on a checkpoint or an exported SavedModel.
"""

import logging
import time

import numpy as np
import tensorflow as tf

from tfssl.errors import ConfigError

log = logging.getLogger("tfssl")
QUERY_CHUNK = 512  # eval images scored at once against the whole bank


def knn_scores(bank, bank_labels, queries, num_classes, k=200, temperature=0.1):
    """Class scores (n, num_classes) of unit-norm queries (n, d) against a unit-norm bank (N, d)
    with labels (N,): each query's k most similar rows vote with weight exp(similarity / T)."""
    similarity = tf.matmul(queries, bank, transpose_b=True)
    top_similarity, top_rows = tf.math.top_k(similarity, min(k, int(bank.shape[0])))
    votes = tf.one_hot(tf.gather(bank_labels, top_rows), num_classes)
    return tf.reduce_sum(votes * tf.exp(top_similarity / temperature)[..., None], 1)


def knn_classify(bank, bank_labels, queries, num_classes, k=200, temperature=0.1):
    """Predicted labels (n,) of the weighted k-NN classifier, chunked over the queries. Features
    are L2-normalised here."""
    bank = tf.math.l2_normalize(tf.cast(bank, tf.float32), -1)
    queries = tf.math.l2_normalize(tf.cast(queries, tf.float32), -1)
    bank_labels = tf.cast(bank_labels, tf.int32)
    predictions = [
        tf.argmax(
            knn_scores(
                bank, bank_labels, queries[i : i + QUERY_CHUNK], num_classes, k, temperature
            ),
            -1,
        ).numpy()
        for i in range(0, int(queries.shape[0]), QUERY_CHUNK)
    ]
    return np.concatenate(predictions) if predictions else np.zeros([0], np.int64)


def bank_batches(data, cfg, view_fn):
    """Batches of (view_fn(image), label) over the train split, or over a fixed random subset of
    --knn_bank_size of its images (seeded by --seed), in split order."""
    records = data.source.records(cfg.train_split)
    total = data.num_train_examples
    if cfg.knn_bank_size and cfg.knn_bank_size < total:
        keep = np.zeros(total, bool)
        keep[np.random.default_rng(cfg.seed).choice(total, cfg.knn_bank_size, replace=False)] = True
        keep = tf.constant(keep)
        records = records.enumerate().filter(lambda i, r: keep[i]).map(lambda i, r: r)
    ds = records.map(
        lambda r: (view_fn(data.to_float(data.decode(r["encoded"]))), r["label"]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.batch(cfg.eval_batch_size).prefetch(tf.data.AUTOTUNE)


def encode(features_fn, batches):
    """(features (N, d) float32, labels (N,)) of every batch."""
    features, labels = [], []
    for images, batch_labels in batches:
        features.append(tf.cast(features_fn(images), tf.float32).numpy())
        labels.append(batch_labels.numpy())
    if not features:
        return np.zeros([0, 0], np.float32), np.zeros([0], np.int64)
    return np.concatenate(features), np.concatenate(labels)


def knn_evaluate(data, cfg, features_fn, view_fn):
    """{'knn_top_1_accuracy': ...} of the weighted k-NN classifier: bank from the train split,
    scored on cfg.eval_split (its first --eval_steps batches if set)."""
    start = time.time()
    bank, bank_labels = encode(features_fn, bank_batches(data, cfg, view_fn))
    queries, labels = encode(
        features_fn, data.eval_batches(view_fn, cfg.eval_batch_size, cfg.eval_split, cfg.eval_steps)
    )
    if not len(bank) or not len(queries):
        raise ConfigError(f"k-NN: the train split or --eval_split={cfg.eval_split} is empty")
    num_classes = max(data.info.num_classes, int(bank_labels.max()) + 1)
    predicted = knn_classify(
        bank, bank_labels, queries, num_classes, cfg.knn_k or 200, cfg.knn_temperature
    )
    accuracy = float(np.mean(predicted == labels))
    log.info(
        "k-NN (k=%d, T=%g) on %s: top-1 %.4f, bank of %d train images, %d eval images, %.0f s",
        cfg.knn_k or 200,
        cfg.knn_temperature,
        cfg.eval_split,
        accuracy,
        len(bank),
        len(queries),
        time.time() - start,
    )
    return {"knn_top_1_accuracy": accuracy}


def evaluate_method(method, cfg):
    """knn_evaluate on a method's frozen encoder features (ConfigError if it has no encoder)."""
    if method.frozen_features(tf.zeros([1, *method.data.image_shape])) is None:
        raise ConfigError(f"--knn: --mode={method.job}'s network has no ResNet encoder to read")
    if getattr(method, "_compiled_features", None) is None:
        method._compiled_features = tf.function(
            method.frozen_features, reduce_retracing=True, autograph=False
        )
    return knn_evaluate(method.data, cfg, method._compiled_features, method.eval_view)


def evaluate_saved_model(path, data, cfg):
    """knn_evaluate on an exported SavedModel's 'final_avg_pool' (its serve() resizes uint8
    images itself)."""
    model = tf.saved_model.load(path)
    probe = model.serve(tf.zeros([1, *data.image_shape], tf.uint8))
    if "final_avg_pool" not in probe:
        raise ConfigError(f"--knn: the SavedModel {path} exports no final_avg_pool features")

    def features(images):
        return model.serve(images)["final_avg_pool"]

    def as_uint8(image):
        return tf.image.convert_image_dtype(image, tf.uint8, saturate=True)

    return knn_evaluate(data, cfg, features, as_uint8)


class KnnMonitor:
    """The trainer's periodic k-NN evaluation: every `every_steps` steps before the last, and in
    the final evaluation. Keeps its latest value for the progress line."""

    def __init__(self, method, cfg, every_steps):
        self.method, self.cfg, self.every_steps = method, cfg, every_steps
        self.latest = {}

    @classmethod
    def create(cls, method, cfg, steps_per_epoch):
        """The monitor of a training run, or None (a method without it, or --knn_k=0)."""
        if not (method.knn_monitor and cfg.knn_k):
            return None
        every = int(round(cfg.knn_every_epochs * steps_per_epoch)) if cfg.knn_every_epochs else 0
        return cls(method, cfg, max(every, 1) if cfg.knn_every_epochs else 0)

    def next_step(self, step):
        """The next step after `step` at which it runs during training (None: only at the end)."""
        return (step // self.every_steps + 1) * self.every_steps if self.every_steps else None

    def due(self, step, total_steps):
        return bool(self.every_steps) and step % self.every_steps == 0 and step < total_steps

    def __call__(self):
        self.latest = evaluate_method(self.method, self.cfg)
        return self.latest
