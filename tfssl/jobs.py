"""The dispatch table: every --mode and the function that runs it, imported when first used.

Training jobs (tfssl.methods.METHODS) all run through tfssl.train.launch.train.
"""

import importlib

from tfssl.methods import METHODS

TRAIN = "tfssl.train.launch:train"

JOBS = {
    **{job: TRAIN for job in METHODS},
    "eval": "tfssl.restore:evaluate_checkpoints",
    "export": "tfssl.export:export_run",
    "compare": "tfssl.compare:compare",
    "benchmark": "tfssl.benchmark:benchmark",
    "prepare_data": "tfssl.data.offline:prepare_data_job",
    "convert_checkpoint": "tfssl.convert:convert_checkpoint",
}


def run(cfg, notes=()):
    """Runs cfg.job and returns what it returns (e.g. a training run's result dict). notes: lines
    to log first (e.g. official flags that change nothing)."""
    import logging

    from tfssl.train.runtime import setup_logging, start_tensorflow

    setup_logging()
    for note in notes:
        logging.getLogger("tfssl").info(note)
    module_name, function_name = JOBS[cfg.job].split(":")
    job = getattr(importlib.import_module(module_name), function_name)
    if JOBS[cfg.job] == TRAIN:
        return job(cfg, start_tensorflow(cfg, trains=True))
    start_tensorflow(cfg, trains=False)
    return job(cfg)
