"""tf.distribute strategies by name, and who writes files in a multi-worker run."""

import json
import os

import tensorflow as tf

from tfssl.errors import ConfigError


def make_strategy(name="auto", tpu_name="", tpu_zone="", gcp_project=""):
    """auto = mirrored over GPUs when there are several, one device for one GPU, the default
    strategy on CPU.

    On a CPU the default strategy runs small steps faster than OneDeviceStrategy and computes the
    same step.
    """
    if name == "multi_worker":  # before any device query: collectives are configured at start-up
        return _multi_worker_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        # Between CPU devices, collective all-reduce mis-orders the ops of synchronised BN and the
        # gathered negatives across replica threads; reducing to one device keeps them in step.
        return tf.distribute.MirroredStrategy(
            [d.name for d in tf.config.list_logical_devices("CPU")],
            cross_device_ops=tf.distribute.ReductionToOneDevice(),
        )
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
                tpu=tpu_name or None, zone=tpu_zone or None, project=gcp_project or None
            )
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.NotFoundError) as e:
            raise ConfigError(
                f"--strategy=tpu found no TPU ({e}); set --tpu_name or use another strategy"
            ) from None
        return tf.distribute.TPUStrategy(resolver)
    raise ConfigError(
        f"--strategy={name} is not one of auto, default, one_device, mirrored, multi_worker, tpu"
    )


def _multi_worker_strategy():
    if "TF_CONFIG" not in os.environ:
        raise ConfigError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable (cluster and task); "
            "see README 'Distributed training'"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def task_of(strategy):
    """(task_type, task_id) of this process; (None, 0) outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None, 0
    return resolver.task_type, resolver.task_id or 0


def is_chief(strategy):
    """The process that writes checkpoints, summaries and results."""
    task_type, task_id = task_of(strategy)
    if task_type is None or task_type == "chief":
        return True
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return task_type == "worker" and task_id == 0 and "chief" not in cluster
