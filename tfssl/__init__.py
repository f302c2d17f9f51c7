"""tfssl: learning image classifiers from few labels (SimCLR v1/v2, Mean Teacher, Ladder, SS-VAE).

From Python or a notebook, `tfssl.run(mode, **flags)` does what `python run.py --mode=... --flag=...` does
and returns the job's result (e.g. the result dict of a training run).
"""

__version__ = "0.1.0"


def run(mode, **flags):
    """Runs one job with run.py's flag names and defaults, e.g. run("finetune", checkpoint=..., label_fraction=0.01)."""
    from tfssl import jobs
    from tfssl.config import Config
    return jobs.run(Config.for_job({"mode": mode, **flags}))
