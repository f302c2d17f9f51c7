"""Figures drawn from trained runs: augmented views, training curves, embeddings, confusion
matrix."""

import os

import numpy as np
import tensorflow as tf

from tfssl import plots, restore
from tfssl.train.evaluate import predict_labels
from tfssl.train.summaries_io import read_scalars


def augmented_views(pretrain_dir, path, count=8):
    """Pairs of SimCLR views of the first training images of a pretrain run."""
    method, _, _, _ = restore.load_trained(pretrain_dir)
    images, _ = next(iter(method.train_dataset(None, 0).take(1)))
    first, second = tf.split(images[:count], 2, axis=-1)
    return plots.view_pairs(first.numpy(), second.numpy(), path)


def training_curves(run_dir, path):
    return plots.training_curves(read_scalars(os.path.join(run_dir, "train")), path)


def test_features(method, data, max_examples=2000, batch_size=500):
    """(encoder features, labels) of the first test examples."""
    features, labels = [], []
    for images, batch_labels in data.eval_batches(
        method.eval_view, batch_size, limit_batches=-(-max_examples // batch_size)
    ):
        features.append(method.model(images, training=False)["hiddens"].numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(features), np.concatenate(labels)


def embedding_before_after(pretrain_dir, path):
    """PCA of test-set encoder features: randomly initialised versus pretrained."""
    method, data, _, _ = restore.load_trained(pretrain_dir)
    after, labels = test_features(method, data)
    fresh = type(method)(method.cfg, data)
    fresh.build()
    before, _ = test_features(fresh, data)
    return plots.embeddings(
        {"before pretraining (random init)": before, "after SimCLR pretraining": after},
        labels,
        path,
        data.info.class_names,
    )


def confusion(run_dir, path, title):
    method, data, _, cfg = restore.load_trained(run_dir)
    truth, predicted = predict_labels(method, data, cfg.eval_split, cfg.eval_batch_size)
    return plots.plot_confusion(
        truth, predicted, data.info.num_classes, path, data.info.class_names, title
    )
