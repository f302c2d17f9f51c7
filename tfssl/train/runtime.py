"""Process set-up before any model is built: logging, seeds, determinism, precision, devices."""

import dataclasses
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


#: CPU flags (as /proc/cpuinfo names them) of native bfloat16 arithmetic: AMX tiles or AVX512-BF16.
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")

#: GPUs from this compute capability on (Volta, 7.0) have float16 tensor cores.
FLOAT16_MIN_COMPUTE_CAPABILITY = (7, 0)


@dataclasses.dataclass(frozen=True)
class Device:
    """What this process trains on, as far as the auto defaults care."""

    kind: str  # "gpu", "tpu" or "cpu"
    compute_capabilities: tuple = ()  # of each GPU, e.g. ((7, 5),)
    cpu_flags: frozenset = frozenset()
    name: str = ""


def detect_device(strategy_name="auto"):
    """The device this process trains on: its GPUs when it sees any, a TPU for --strategy=tpu, else
    the CPU and its /proc/cpuinfo flags."""
    if strategy_name == "tpu":
        return Device("tpu", name="TPU")
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = [tf.config.experimental.get_device_details(gpu) for gpu in gpus]
        names = sorted({d.get("device_name", "GPU") for d in details})
        return Device(
            "gpu",
            tuple(tuple(d.get("compute_capability") or (0, 0)) for d in details),
            name=f"{len(gpus)} x {', '.join(names)}",
        )
    return Device("cpu", cpu_flags=frozenset(cpu_flags()), name=cpu_model() or "CPU")


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name, or "" where /proc/cpuinfo does not say."""
    try:
        with open(cpuinfo) as lines:
            for line in lines:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def auto_precision(device):
    """--precision=auto: the fastest policy this device computes natively.

    - mixed_float16 on GPUs of compute capability 7.0 or more (float16 tensor cores; older GPUs
      have none, and float16 is no faster there);
    - mixed_bfloat16 on a TPU, and on CPUs with AMX or AVX512-BF16 (oneDNN's bfloat16 kernels:
      1.4-2x float32's speed on AMX Xeons, BENCHMARKS.md);
    - float32 otherwise: without those instructions bfloat16 is emulated (7.8x slower on an
      AVX2-only CPU, BENCHMARKS.md).
    """
    if device.kind == "gpu":
        if min(device.compute_capabilities) >= FLOAT16_MIN_COMPUTE_CAPABILITY:
            return "mixed_float16"
        return "float32"
    if device.kind == "tpu":
        return "mixed_bfloat16"
    if device.cpu_flags & set(BFLOAT16_CPU_FLAGS):
        return "mixed_bfloat16"
    return "float32"


def auto_matmul_conv_grads(device):
    """--matmul_conv_grads=auto: on only on a CPU, where it works around oneDNN's slow weight
    gradients for small outputs (tfssl/models/conv.py); GPUs and TPUs have fast kernels of their
    own."""
    return device.kind == "cpu"


def flag_is_on(value):
    """A boolean flag's value as a bool: True, "true", "1", "yes" (any case) are on."""
    return str(value).strip().lower() in ("true", "1", "yes")


def resolve_device_defaults(cfg, device=None, run_precision=""):
    """cfg with --precision=auto and --matmul_conv_grads=auto resolved for this device.

    run_precision, the precision a resumed run started with, wins over auto: a float16 run's
    checkpoint holds a loss-scaling optimizer that a float32 or bfloat16 one does not, so a run
    keeps its precision (pass --precision explicitly to change it)."""
    changes = {}
    if cfg.precision == "auto" or cfg.matmul_conv_grads == "auto":
        device = device or detect_device(cfg.strategy)
    if cfg.precision == "auto":
        changes["precision"] = run_precision or auto_precision(device)
    if cfg.matmul_conv_grads == "auto":
        changes["matmul_conv_grads"] = "true" if auto_matmul_conv_grads(device) else "false"
    else:
        changes["matmul_conv_grads"] = "true" if flag_is_on(cfg.matmul_conv_grads) else "false"
    return cfg.replace(**changes)


def setup_runtime(cfg, run_precision=""):
    """Resolves the auto defaults (resolve_device_defaults), then sets seeds, op determinism, the
    precision policy and the conv gradient path, before any model is built. Returns the resolved
    config: what actually runs, and what flags.json and result.json record."""
    from tfssl.models import conv

    cfg = resolve_device_defaults(cfg, run_precision=run_precision)
    conv.set_matmul_weight_grads(flag_is_on(cfg.matmul_conv_grads))
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
    return cfg


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
