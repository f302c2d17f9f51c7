"""Where the pretrain step's time goes: TensorFlow's profiler around timed calls of the real step.

    python benchmarks/profile_step.py [--flag=value ...]   (run.py's flags; default: the issue #9 setup,
                                                            ResNet-18, 32x32x3, batch 256, mixed_bfloat16)

Runs the step of `--mode=benchmark` (tfssl/benchmark.py), traces the timed calls with
tf.profiler, reads the trace (XSpace protobuf) back and prints one JSON line: the measured step
time and, per op type, the self time summed over threads, per step. With two cores two ops can
run at once, so the op times add up to more than the step time; their shares still show where
the work is.
"""

import collections
import glob
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULT_FLAGS = ["--mode=benchmark", "--dataset=synthetic:32x32x3", "--resnet_depth=18", "--width_multiplier=1",
                 "--train_batch_size=256", "--precision=mixed_bfloat16", "--steps_per_loop=2"]


def op_self_times(xspace_path):
    """{op type: self time in seconds} over the host plane's threads (nested events' time is the child's).
    Op events are named 'op name:op type'; the executor's own ('ExecutorState::Process') are left out."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
            stack = []  # [name, end, self time]
            for event in events:
                while stack and stack[-1][1] <= event.offset_ps:
                    name, _, self_ps = stack.pop()
                    if name:
                        totals[name] += self_ps
                if stack:
                    stack[-1][2] -= event.duration_ps
                name = names.get(event.metadata_id, "?")
                op_type = name.split(":")[1] if name.count(":") == 1 else None
                stack.append([op_type, event.offset_ps + event.duration_ps, event.duration_ps])
            for name, _, self_ps in stack:
                if name:
                    totals[name] += self_ps
    return {name: ps / 1e12 for name, ps in totals.items()}


def main(argv):
    from absl import flags
    import run  # defines the flags from tfssl.config.Config
    flags.FLAGS(["profile_step"] + DEFAULT_FLAGS + argv[1:])
    import dataclasses
    from tfssl.benchmark import time_train_step
    from tfssl.config import Config
    given = {f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(Config) if flags.FLAGS[f.name].present}
    cfg = Config.for_job(given)
    with tempfile.TemporaryDirectory() as trace_dir:
        step_seconds, _, _, _ = time_train_step(cfg, timed_calls=3, profile_dir=trace_dir)
        paths = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
        times = op_self_times(paths[0])
    steps = 3 * cfg.steps_per_loop
    per_step = sorted(((t / steps, name) for name, t in times.items()), reverse=True)
    total = sum(t for t, _ in per_step)
    print(json.dumps({"figure": "step_profile", "precision": cfg.precision, "train_batch_size": cfg.train_batch_size,
                      "step_time_s": round(step_seconds, 4), "op_self_time_per_step_s": round(total, 4),
                      "top_ops": [[name, round(t, 4), round(100 * t / total, 1)] for t, name in per_step[:25]]}))


if __name__ == "__main__":
    main(sys.argv)
