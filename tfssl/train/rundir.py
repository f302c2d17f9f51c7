"""The run directory: an exclusive lock, flags.json, and results written atomically."""

import fcntl
import json
import os

import numpy as np

from tfssl.config import ARCHITECTURE_FIELDS
from tfssl.errors import ConfigError

FLAGS_FILE = "flags.json"
RESULT_FILE = "result.json"
LOCK_FILE = ".lock"


def _to_json(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if hasattr(value, "numpy"):
        return _to_json(value.numpy())
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_json(path, data):
    """Writes data as JSON through a temporary file, so readers never see half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True, default=_to_json)
    os.replace(tmp, path)


def read_json(path):
    with open(path) as f:
        return json.load(f)


# What a run's checkpoints and label subset depend on, besides its job: the data and the network.
# A model_dir whose flags.json holds other values is refused rather than resumed.
RUN_KEY_FIELDS = (
    "dataset",
    "image_size",
    *ARCHITECTURE_FIELDS,
    "student_resnet_depth",
    "student_width_multiplier",
)


def run_key(cfg):
    """{field: value} of RUN_KEY_FIELDS for cfg, as given (--image_size=0, the dataset's own size,
    differs from the same size given explicitly)."""
    return {name: getattr(cfg, name) for name in RUN_KEY_FIELDS}


def _same(recorded, value):
    if isinstance(value, (int, float)) and isinstance(recorded, (int, float)):
        return float(recorded) == float(value)
    return str(recorded) == str(value)


class RunDirectory:
    """Holds model_dir for one process: creates it, locks it, and records what runs in it."""

    def __init__(self, path, writer=True):
        self.path = path
        self.writer = writer
        self._lock = None

    def file(self, name):
        return os.path.join(self.path, name)

    def check_job(self, job, key=None):
        """Refuses a directory that holds another job's run, or a run whose flags.json gives
        another value to a field of `key` ({flag: value}: what its checkpoints and label subset
        depend on, see run_key), which it would otherwise resume or silently reuse."""
        previous = self.file(FLAGS_FILE)
        if not os.path.exists(previous):
            return
        recorded = read_json(previous)
        previous_job = recorded.get("job")
        if previous_job and previous_job != job:
            raise ConfigError(
                f"--model_dir={self.path} holds a {previous_job} run, not {job}; use a new "
                "--model_dir (or --checkpoint to start from it)"
            )
        for name, value in (key or {}).items():
            if name in recorded and not _same(recorded[name], value):
                raise ConfigError(
                    f"--model_dir={self.path} holds a run with --{name}={recorded[name]}, not "
                    f"--{name}={value}; use a new --model_dir (or --{name}={recorded[name]})"
                )

    def open(self, job):
        """Creates and locks the directory; refuses a directory held by another job or live run."""
        try:
            os.makedirs(self.path, exist_ok=True)
            probe = self.file(f".write_test{os.getpid()}")
            open(probe, "w").close()
            os.remove(probe)
        except OSError as e:
            raise ConfigError(
                f"--model_dir={self.path} is not writable ({e.strerror}); choose another directory"
            ) from None
        if not self.writer:
            return self
        self.check_job(job)
        self._lock = open(self.file(LOCK_FILE), "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise ConfigError(
                f"--model_dir={self.path} is in use by another live run; wait for it to end or "
                "choose another --model_dir"
            ) from None
        return self

    def close(self):
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def write_flags(self, config_dict, job):
        if self.writer:
            write_json(self.file(FLAGS_FILE), {**config_dict, "job": job})

    def write_result(self, result, step):
        """result.json (latest) and result_<step>.json, as the official code writes per eval."""
        if self.writer:
            write_json(self.file(f"result_{step}.json"), result)
            write_json(self.file(RESULT_FILE), result)
