"""tfssl: learning image classifiers from few labels (SimCLR v1/v2, Mean Teacher, Ladder, SS-VAE).

From Python or a notebook, `tfssl.run(mode, **flags)` does what
`python run.py --mode=... --flag=...` does and returns the job's result (e.g. the result dict of a
training run).

Importing tfssl changes no environment variable. run.py and the Colab notebook set
TF_ENABLE_ONEDNN_OPTS=1 (unless it is set) before TensorFlow loads: TensorFlow turns oneDNN on by
itself only on CPUs with AVX-512, and on AVX2-only hosts (e.g. some AMD EPYC) the default pretrain
step then ran 2.7x slower (BENCHMARKS.md). Scripts of your own should do the same.
"""

__version__ = "0.1.0"

#: The TensorFlow and Keras releases the tests ran on (older ones may work; the notebook warns).
TESTED_WITH = {"tensorflow": "2.21", "keras": "3.15"}


def run(mode, **flags):
    """Runs one job with run.py's flag names and defaults, e.g.
    run("finetune", checkpoint=..., label_fraction=0.01)."""
    from tfssl import jobs
    from tfssl.config import Config

    return jobs.run(Config.for_job({"mode": mode, **flags}))
