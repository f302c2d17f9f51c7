"""Process set-up before any model is built: logging, seeds, determinism, precision, devices."""

import logging
import sys

import keras
import tensorflow as tf

log = logging.getLogger("tfssl")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a notebook or pytest may replace it)."""

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


def start_tensorflow(cfg, trains):
    """Creates the multi-worker strategy first (it must precede any op) when `trains`, or
    initialises the devices, quietly. Returns the strategy or None."""
    from tfssl.quiet import without_stderr

    with without_stderr():
        if cfg.strategy == "multi_worker" and trains:
            from tfssl.train.distribute import make_strategy

            return make_strategy(cfg.strategy)
        tf.config.list_logical_devices()
    return None
