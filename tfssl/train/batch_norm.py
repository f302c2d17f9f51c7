"""Re-estimating batch-norm statistics after training (--bn_recalibration_batches).

A network trained on perturbed inputs keeps moving averages of the perturbed batches' statistics
(Mean Teacher on MNIST adds Gaussian noise of std 0.5, more than the pixels' own spread); on clean
test images it then normalises with the wrong scale. As in SWA's update_bn, each BatchNormalization
layer's moving mean and variance are replaced by the plain average of the batch statistics over
some batches of clean train images (no labels are read).
"""

import keras


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
