"""Hides the C++ start-up lines TensorFlow prints (TF_CPP_MIN_LOG_LEVEL does not silence them)."""

import contextlib
import os


@contextlib.contextmanager
def without_stderr():
    """Sends file descriptor 2 to /dev/null for the duration (Python exceptions still propagate)."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)
