"""Reads scalars back from a run's TensorBoard event files (for plots and checks)."""

import glob
import os

import tensorflow as tf


def read_scalars(logdir):
    """{tag: [(step, value), ...]} sorted by step, from every event file in logdir."""
    scalars = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                    number = float(tf.make_ndarray(value.tensor))
                elif value.HasField("simple_value"):
                    number = value.simple_value
                else:
                    continue
                scalars.setdefault(value.tag, []).append((event.step, number))
    return {tag: sorted(points) for tag, points in scalars.items()}
