"""Runs one job from a Config: train a method, evaluate, export, compare, prepare data."""

import logging
import sys

import keras
import tensorflow as tf

from tfssl.methods import METHODS, method_class

log = logging.getLogger("tfssl")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (it may be replaced, e.g. by a notebook or
    pytest)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(level=logging.INFO):
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname).1s %(message)s", "%H:%M:%S")
        )
        log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU feature flags the kernel lists; empty where it lists none (e.g. no /proc, as on
    macOS)."""
    try:
        with open(cpuinfo) as lines:
            for line in lines:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def bfloat16_is_emulated(precision, on_accelerator, flags):
    """True for mixed_bfloat16 on a CPU known to lack AVX-512, which oneDNN's bfloat16 kernels need:
    TensorFlow then falls back to much slower generic kernels."""
    return (
        precision == "mixed_bfloat16"
        and not on_accelerator
        and bool(flags)
        and "avx512f" not in flags
    )


def setup_runtime(cfg):
    """Seeds, op determinism, the precision policy and the conv gradient path, before any model is
    built."""
    from tfssl.models import conv

    conv.set_matmul_weight_grads(cfg.matmul_conv_grads)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(cfg.precision)
    if cfg.precision == "mixed_bfloat16":
        on_accelerator = cfg.strategy == "tpu" or bool(tf.config.list_physical_devices("GPU"))
        if bfloat16_is_emulated(cfg.precision, on_accelerator, cpu_flags()):
            log.warning(
                "--precision=mixed_bfloat16 on a CPU without AVX-512: TensorFlow emulates bfloat16 "
                "here, several times slower than float32 (BENCHMARKS.md); pass --precision=float32"
            )


def inherit_architecture(cfg):
    """A fine-tune takes its network from --checkpoint; a distillation from --teacher (a tfssl
    run)."""
    from tfssl import restore

    source = {
        "finetune": ("--checkpoint", cfg.checkpoint),
        "distill": ("--teacher", cfg.teacher),
    }.get(cfg.job)
    if source is None:
        return cfg
    resolved = restore.resolve_checkpoint(
        source[1], source[0], allow_saved_model=cfg.job == "distill"
    )
    if resolved.saved_model_dir:
        return cfg
    trained_cfg, _ = restore.run_config(resolved.run_dir, source[0])
    return restore.with_architecture_of(cfg, trained_cfg)


def train(cfg, strategy=None):
    """Trains cfg.job in cfg.run_dir (resuming if it holds a checkpoint) and returns its result
    dict."""
    from tfssl.data.pipeline import DataBundle
    from tfssl.train.distribute import make_strategy
    from tfssl.train.trainer import Trainer

    strategy = strategy or make_strategy(cfg.strategy, cfg.tpu_name)
    cfg = inherit_architecture(cfg)
    setup_runtime(cfg)
    data = DataBundle(cfg, cfg.run_dir)
    return Trainer(cfg, method_class(cfg.job), data, strategy).fit()


def start_tensorflow(cfg):
    """Creates the multi-worker strategy first (it must precede any op), or initialises the devices,
    quietly."""
    from tfssl.quiet import without_stderr

    with without_stderr():
        if cfg.strategy == "multi_worker" and cfg.job in METHODS:
            from tfssl.train.distribute import make_strategy

            return make_strategy(cfg.strategy)
        tf.config.list_logical_devices()
    return None


def run(cfg):
    setup_logging()
    job = cfg.job
    strategy = start_tensorflow(cfg)
    if job in METHODS:
        return train(cfg, strategy)
    if job == "eval":
        from tfssl.restore import evaluate_checkpoints

        return evaluate_checkpoints(cfg)
    if job == "export":
        from tfssl.export import export_run

        return export_run(cfg)
    if job == "prepare_data":
        from tfssl.data.offline import prepare_all

        return prepare_all(cfg.data_dir)
    if job == "compare":
        from tfssl.compare import compare

        return compare(cfg)
    if job == "benchmark":
        from tfssl.benchmark import benchmark

        return benchmark(cfg)
    raise ValueError(f"unknown job {job}")
