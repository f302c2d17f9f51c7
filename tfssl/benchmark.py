"""--mode=benchmark: throughput of the real pretrain step, and of the input pipeline alone.

The step is the trainer's own tf.function (the code path of --mode=pretrain),
fed one fixed batch of augmented views so that the input pipeline is not
timed with it. Warm-up steps are excluded; the step time is the median of the
timed calls. Prints one JSON line per figure.
"""

import json
import logging
import resource
import statistics
import time

import tensorflow as tf

from tfssl.data.pipeline import DataBundle
from tfssl.methods.simclr import SimCLRPretrain
from tfssl.train.distribute import make_strategy
from tfssl.train.trainer import Trainer

log = logging.getLogger("tfssl")
WARMUP_STEPS = 10


def peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def time_train_step(cfg, timed_calls=5, profile_dir=None):
    """(median seconds per pretrain step of cfg, all timed steps, peak RSS once the model and
    optimizer are built, image size), on a fixed batch, steps_per_loop steps per call. With
    profile_dir, the timed calls are traced there by tf.profiler."""
    import tempfile

    from tfssl.train.runtime import setup_runtime

    cfg = setup_runtime(cfg)
    strategy = make_strategy(cfg.strategy, cfg.tpu_name, cfg.tpu_zone, cfg.gcp_project)
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = cfg.replace(model_dir=run_dir)
        trainer = Trainer(cfg, SimCLRPretrain, DataBundle(cfg, run_dir), strategy)
        fixed = iter(
            strategy.distribute_datasets_from_function(
                lambda ctx: trainer.method.train_dataset(ctx, 0).take(1).cache().repeat()
            )
        )
        rss_built = peak_rss_gib()
        train_loop = trainer.make_train_loop()
        steps = tf.constant(cfg.steps_per_loop)
        done = 0
        while done < WARMUP_STEPS:
            train_loop(fixed, steps)[1].numpy()
            done += cfg.steps_per_loop
        times = []
        if profile_dir:
            # Level 3 also records the allocator's events (tensor memory, when it is a BFC
            # allocator).
            tf.profiler.experimental.start(
                profile_dir, tf.profiler.experimental.ProfilerOptions(host_tracer_level=3)
            )
        for _ in range(timed_calls):
            start = time.perf_counter()
            train_loop(fixed, steps)[1].numpy()
            times.append((time.perf_counter() - start) / cfg.steps_per_loop)
        if profile_dir:
            tf.profiler.experimental.stop()
    return statistics.median(times), times, rss_built, trainer.method.data.image_size


def time_input_pipeline(cfg, batches=30):
    """Images per second that the pretrain input pipeline delivers (two views each), after
    warm-up."""
    import tempfile

    with tempfile.TemporaryDirectory() as run_dir:
        method = SimCLRPretrain(cfg, DataBundle(cfg, run_dir))
        iterator = iter(method.train_dataset(None, 0))
        for _ in range(5):
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        return batches * cfg.train_batch_size / (time.perf_counter() - start)


def benchmark(cfg):
    from tfssl.train.runtime import resolve_device_defaults

    rss_imported = peak_rss_gib()
    cfg = resolve_device_defaults(cfg)  # the precision printed is the one timed
    step_seconds, all_times, rss_built, image_size = time_train_step(cfg)
    step = {
        "figure": "pretrain_step",
        "dataset": cfg.dataset,
        "resnet_depth": cfg.resnet_depth,
        "width_multiplier": cfg.width_multiplier,
        "image_size": image_size,
        "train_batch_size": cfg.train_batch_size,
        "precision": cfg.precision,
        "optimizer": cfg.optimizer,
        "steps_per_loop": cfg.steps_per_loop,
        "jit_compile": cfg.jit_compile,
        "step_time_s": round(step_seconds, 4),
        "images_per_s": round(cfg.train_batch_size / step_seconds, 1),
        "step_times_s": [round(t, 4) for t in all_times],
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "peak_rss_after_import_gib": round(rss_imported, 2),
        "peak_rss_after_build_gib": round(rss_built, 2),
        "device": tf.config.list_logical_devices()[-1].device_type,
    }
    print(json.dumps(step), flush=True)
    pipeline = {
        "figure": "input_pipeline",
        "dataset": cfg.dataset,
        "images_per_s": round(time_input_pipeline(cfg), 1),
        "train_batch_size": cfg.train_batch_size,
    }
    pipeline["ratio_to_step"] = round(pipeline["images_per_s"] / step["images_per_s"], 2)
    print(json.dumps(pipeline), flush=True)
    return step, pipeline
