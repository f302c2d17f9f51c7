"""Device-aware defaults (--precision=auto, --matmul_conv_grads=auto) under mocked devices; run.py,
not `import tfssl`, turns oneDNN on."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, tiny_config
from tfssl.train import runtime

PROBE = """
import json, os, pkgutil, importlib
def changed(before):
    return sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
before = dict(os.environ)
import tfssl, tfssl.config
by_tfssl = changed(before)
import run  # sets TF_ENABLE_ONEDNN_OPTS unless given, then imports TensorFlow
from tensorflow.python.util import _pywrap_util_port as port
before = dict(os.environ)  # TensorFlow sets variables of its own (TF2_BEHAVIOR, ...)
names = [m.name for m in pkgutil.walk_packages(tfssl.__path__, "tfssl.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"by_tfssl": by_tfssl, "by_every_module": changed(before), "modules": len(names),
                  "onednn": port.IsMklEnabled()}))
"""


@pytest.mark.parametrize("setting, enabled", [(None, True), ("0", False)])
def test_run_py_not_import_tfssl_turns_onednn_on(setting, enabled):
    """Importing tfssl, or any of its modules, changes no environment variable; run.py sets
    TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow loads, unless the user set it."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["by_tfssl"] == [] and report["by_every_module"] == []
    assert report["modules"] > 40  # every module was imported
    assert report["onednn"] is enabled


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx avx2 fma
bugs\t\t: sysret_ss_attrs

processor\t: 1
flags\t\t: fpu sse2 avx avx2 fma
"""


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert runtime.cpu_flags(str(path)) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert runtime.cpu_flags(str(tmp_path / "absent")) == set()


@pytest.mark.parametrize(
    "precision, on_accelerator, flags, emulated",
    [
        ("mixed_bfloat16", False, {"avx2"}, True),
        ("mixed_bfloat16", False, {"avx2", "avx512f"}, False),
        ("mixed_bfloat16", True, {"avx2"}, False),  # a GPU or TPU computes in bfloat16 itself
        ("mixed_bfloat16", False, set(), False),  # flags unknown: no claim
        ("float32", False, {"avx2"}, False),
        ("mixed_float16", False, {"avx2"}, False),
    ],
)
def test_bfloat16_is_emulated_only_on_a_cpu_without_avx512(
    precision, on_accelerator, flags, emulated
):
    assert runtime.bfloat16_is_emulated(precision, on_accelerator, flags) is emulated


@pytest.mark.parametrize(
    "flags, precision, warned",
    [
        ({"avx2"}, "mixed_bfloat16", True),
        ({"avx2", "avx512f"}, "mixed_bfloat16", False),
        ({"avx2"}, "float32", False),
    ],
)
def test_setup_runtime_warns_about_emulated_bfloat16(monkeypatch, flags, precision, warned):
    import keras

    warnings = []
    monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    monkeypatch.setattr(runtime.log, "warning", lambda message, *args: warnings.append(message))
    try:
        runtime.setup_runtime(tiny_config(precision=precision))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert bool(warnings) is warned
    assert all("--precision=float32" in message for message in warnings)


T4 = runtime.Device("gpu", ((7, 5),), name="1 x Tesla T4")
K80 = runtime.Device("gpu", ((3, 7),), name="1 x Tesla K80")
MIXED_GPUS = runtime.Device("gpu", ((8, 0), (6, 0)))
AMX = runtime.Device("cpu", cpu_flags=frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"}))
AVX512_BF16 = runtime.Device("cpu", cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16"}))
AVX512 = runtime.Device("cpu", cpu_flags=frozenset({"avx2", "avx512f"}))
AVX2 = runtime.Device("cpu", cpu_flags=frozenset({"avx2", "fma"}))
TPU = runtime.Device("tpu")


@pytest.mark.parametrize(
    "device, precision, matmul_conv_grads",
    [
        (T4, "mixed_float16", "false"),  # float16 tensor cores from compute capability 7.0
        (K80, "float32", "false"),  # none before
        (MIXED_GPUS, "float32", "false"),  # the oldest GPU decides
        (AMX, "mixed_bfloat16", "true"),
        (AVX512_BF16, "mixed_bfloat16", "true"),
        (AVX512, "float32", "true"),  # AVX-512 without BF16: no native bfloat16
        (AVX2, "float32", "true"),  # bfloat16 emulated there: 7.8x slower
        (runtime.Device("cpu"), "float32", "true"),  # flags unknown (no /proc/cpuinfo)
        (TPU, "mixed_bfloat16", "false"),
    ],
)
def test_auto_resolves_for_the_device(device, precision, matmul_conv_grads):
    cfg = tiny_config(precision="auto", matmul_conv_grads="auto")
    resolved = runtime.resolve_device_defaults(cfg, device)
    assert (resolved.precision, resolved.matmul_conv_grads) == (precision, matmul_conv_grads)


@pytest.mark.parametrize(
    "given, expected", [("mixed_bfloat16", "mixed_bfloat16"), ("float32", "float32")]
)
def test_an_explicit_precision_wins_over_the_device(given, expected):
    resolved = runtime.resolve_device_defaults(
        tiny_config(precision=given, matmul_conv_grads=False), T4
    )
    assert (resolved.precision, resolved.matmul_conv_grads) == (expected, "false")


def test_a_resumed_run_keeps_its_precision():
    cfg = tiny_config(precision="auto")
    assert runtime.resolve_device_defaults(cfg, AVX2, run_precision="mixed_float16").precision == (
        "mixed_float16"
    )


class FakeGpu:
    name = "/physical_device:GPU:0"
    device_type = "GPU"


def test_detect_device_reads_gpus_and_cpu_flags(monkeypatch):
    """The detection itself, with TensorFlow's device queries and /proc/cpuinfo mocked."""
    details = {"compute_capability": (7, 5), "device_name": "Tesla T4"}
    monkeypatch.setattr(runtime.tf.config, "list_physical_devices", lambda kind=None: [FakeGpu()])
    monkeypatch.setattr(runtime.tf.config.experimental, "get_device_details", lambda d: details)
    assert runtime.detect_device() == T4
    assert runtime.detect_device("tpu").kind == "tpu"
    monkeypatch.setattr(runtime.tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert runtime.detect_device().cpu_flags == {"avx2", "avx512_bf16"}


@pytest.mark.parametrize(
    "flags, policy, matmul",
    [({"avx2", "fma"}, "float32", True), ({"avx512f", "avx512_bf16"}, "mixed_bfloat16", True)],
)
def test_setup_runtime_applies_what_auto_resolved(monkeypatch, flags, policy, matmul):
    import keras

    from tfssl.models import conv

    monkeypatch.setattr(runtime.tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    try:
        cfg = runtime.setup_runtime(tiny_config(precision="auto", matmul_conv_grads="auto"))
        assert keras.mixed_precision.global_policy().name == policy == cfg.precision
        assert conv._matmul_weight_grads is matmul and cfg.matmul_conv_grads == str(matmul).lower()
    finally:
        keras.mixed_precision.set_global_policy("float32")
        conv.set_matmul_weight_grads(True)


def test_runs_record_what_auto_resolved_and_keep_it_on_resume(monkeypatch, gray_folder, tmp_path):
    """flags.json and result.json hold the resolved values; a resumed run keeps its precision even
    on a device where auto would choose another."""
    import keras

    from tfssl.train import launch

    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2", "fma"})
    cfg = tiny_config(
        mode="pretrain",
        dataset=f"folder:{gray_folder}",
        model_dir=str(tmp_path),
        precision="auto",
        matmul_conv_grads="auto",
        train_steps=1,
        eval_steps=1,
    )
    try:
        launch.train(cfg)
        flags = json.load(open(tmp_path / "flags.json"))
        result = json.load(open(tmp_path / "result.json"))
        assert (flags["precision"], flags["matmul_conv_grads"]) == ("float32", "true")
        assert (result["precision"], result["matmul_conv_grads"]) == ("float32", "true")
        monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512f", "amx_bf16"})
        assert runtime.setup_runtime(cfg.replace(model_dir="")).precision == "mixed_bfloat16"
        assert launch.resumed_precision(cfg) == "float32"
        assert launch.resumed_precision(cfg.replace(model_dir=str(tmp_path / "new"))) == ""
    finally:
        keras.mixed_precision.set_global_policy("float32")
