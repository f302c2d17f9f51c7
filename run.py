"""tfssl command line: python run.py --mode=JOB [--flagfile=configs/...cfg] [--flag=value ...]
(--mode lists the jobs; tfssl/jobs.py holds them).

This is the only module that reads absl FLAGS: it turns them into a tfssl.config.Config.
"""

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Before TensorFlow loads: TensorFlow turns oneDNN on by itself only on CPUs with AVX-512, and on
# AVX2-only hosts the default pretrain step then ran 2.7x slower (BENCHMARKS.md). Set it to 0 to opt
# out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


from tfssl.quiet import without_stderr  # noqa: E402

with without_stderr():  # TF prints start-up lines that TF_CPP_MIN_LOG_LEVEL does not silence
    import tensorflow  # noqa: E402, F401

from absl import flags, logging  # noqa: E402

from tfssl.config import Config  # noqa: E402
from tfssl.errors import UserError  # noqa: E402

_DEFINE = {
    bool: flags.DEFINE_bool,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    str: flags.DEFINE_string,
}
for _field in dataclasses.fields(Config):
    _help = _field.metadata["help"]
    if "choices" in _field.metadata:
        _help += " One of: " + ", ".join(c for c in _field.metadata["choices"] if c) + "."
    _DEFINE[_field.type](_field.name, _field.default, _help)
FLAGS = flags.FLAGS
_THIS_MODULE = sys.modules[__name__]


def main(argv):
    """Parses argv into a Config and runs its job. Returns the exit status; errors are one line."""
    if any(arg in ("-h", "--help", "--helpshort", "--helpfull") for arg in argv[1:]):
        print(__doc__ + "\n" + FLAGS.module_help(_THIS_MODULE))
        return 0
    FLAGS.unparse_flags()
    try:
        rest = FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(rest) > 1:
        print(
            f"error: unexpected argument(s) {' '.join(rest[1:])}; flags are written --name=value",
            file=sys.stderr,
        )
        return 2
    logging.set_verbosity(logging.WARNING)  # tfds' info lines
    given = {
        f.name: FLAGS[f.name].value for f in dataclasses.fields(Config) if FLAGS[f.name].present
    }
    try:
        from tfssl import jobs, official_flags

        cfg = Config.for_job(given)
        jobs.run(cfg, notes=official_flags.notes(cfg, given))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the last checkpoint in model_dir is kept; "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
