"""Importing tfssl before TensorFlow turns oneDNN on (TF leaves it off on AVX2-only CPUs); users can
opt out."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, tiny_config
from tfssl.train import runtime

PROBE = (
    "import tfssl, tensorflow; from tensorflow.python.util import _pywrap_util_port as port; "
    "print(port.IsMklEnabled())"
)


@pytest.mark.parametrize("setting, enabled", [(None, "True"), ("0", "False")])
def test_onednn_is_on_unless_the_user_turns_it_off(setting, enabled):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    printed = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert printed[-1] == enabled


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
