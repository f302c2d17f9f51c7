"""Re-estimating batch-norm statistics after training (--bn_recalibration_batches).

A network trained on perturbed inputs keeps moving averages of the perturbed batches' statistics
(Mean Teacher on MNIST adds Gaussian noise of std 0.5, more than the pixels' own spread); on clean
test images it then normalises with the wrong scale. As in SWA's update_bn, each BatchNormalization
layer's moving mean and variance are replaced by the plain average of the batch statistics over
some batches of clean train images (no labels are read).
"""

import logging
import time

import keras

log = logging.getLogger("tfssl")


def batch_norm_layers(network):
    """The keras BatchNormalization layers inside a network, in call order."""
    return [
        layer
        for layer in network._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def recalibrate_batch_norm(networks, batches):
    """Sets every BN layer's moving mean/variance to the mean, over `batches`, of its batch
    mean/variance.

    Each network runs on each batch in training mode (dropout included; it changed nothing
    measurable for Mean Teacher here). Batch k (from 1) is folded in with momentum (k - 1) / k, a
    cumulative average, so the first batch replaces the old statistics. The layers' momenta are
    restored after. Call in cross-replica context: assigning a mirrored variable there updates every
    replica's copy. Returns the number of batches used.
    """
    layers = [layer for network in networks for layer in batch_norm_layers(network)]
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for images in batches:
            count += 1
            for layer in layers:
                layer.momentum = (count - 1) / count
            for network in networks:
                network(images, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return count


def recalibrate_on_train_images(method, cfg, strategy):
    """A method's BN statistics re-estimated on --bn_recalibration_batches batches of clean
    (eval-view) train images, drawn with their own seed, before the final checkpoint."""
    start = time.time()
    batches = method.data.train_batches(
        lambda image, seed: method.eval_view(image), cfg.eval_batch_size, "all", stream=9
    ).map(lambda images, labels: images)
    with strategy.scope():
        count = recalibrate_batch_norm(
            method.batch_norm_networks(), batches.take(cfg.bn_recalibration_batches)
        )
    log.info(
        "re-estimated batch-norm statistics on %d batches of %d clean train images (%.0f s)",
        count,
        cfg.eval_batch_size,
        time.time() - start,
    )
