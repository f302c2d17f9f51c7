"""Importing tfssl before TensorFlow turns oneDNN on (TF leaves it off on AVX2-only CPUs); users can opt out."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = ("import tfssl, tensorflow; from tensorflow.python.util import _pywrap_util_port as port; "
         "print(port.IsMklEnabled())")


@pytest.mark.parametrize("setting, enabled", [(None, "True"), ("0", "False")])
def test_onednn_is_on_unless_the_user_turns_it_off(setting, enabled):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    printed = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert printed[-1] == enabled
