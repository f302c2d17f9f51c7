"""Where the pretrain step's time and memory go: TensorFlow's profiler around timed calls of the
real step.

    python benchmarks/profile_step.py [--flag=value ...]
        (run.py's flags; default: the issue #9 setup, ResNet-18, 32x32x3, batch 256, mixed_bfloat16)

Runs the step of `--mode=benchmark` (tfssl/benchmark.py), traces the timed calls with
tf.profiler, reads the trace (XSpace protobuf) back and prints one JSON line: the measured step
time; per op type, the self time summed over threads, per step (with two cores two ops can run
at once, so the op times add up to more than the step time; their shares still show where the
work is); and the tensors alive when TensorFlow's allocator peaked, by the op type that made them.
The CPU allocator is switched to BFC so that the trace holds its allocation events.
"""

import collections
import glob
import json
import os
import re
import sys
import tempfile

os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = (
    "true"  # before TensorFlow starts: its allocations are traced
)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULT_FLAGS = [
    "--mode=benchmark",
    "--dataset=synthetic:32x32x3",
    "--resnet_depth=18",
    "--width_multiplier=1",
    "--train_batch_size=256",
    "--precision=mixed_bfloat16",
    "--steps_per_loop=2",
]


def read_xspace(path):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    return [plane for plane in space.planes if plane.name.startswith("/host:CPU")]


def op_type(event_name):
    """'scope/op:Type' -> 'Type'; None for the executor's own events ('ExecutorState::Process')."""
    return event_name.split(":")[1] if event_name.count(":") == 1 else None


def op_self_times(planes):
    """{op type: self time in seconds} over the threads (nested events' time is the child's)."""
    totals = collections.Counter()
    for plane in planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
            stack = []  # [op type or None, end, self time]
            for event in events:
                while stack and stack[-1][1] <= event.offset_ps:
                    name, _, self_ps = stack.pop()
                    if name:
                        totals[name] += self_ps
                if stack:
                    stack[-1][2] -= event.duration_ps
                stack.append(
                    [
                        op_type(names.get(event.metadata_id, "")),
                        event.offset_ps + event.duration_ps,
                        event.duration_ps,
                    ]
                )
            for name, _, self_ps in stack:
                if name:
                    totals[name] += self_ps
    return {name: ps / 1e12 for name, ps in totals.items()}


def text(stat, stat_names):
    """A string stat's value; long ones are stored once and referenced."""
    if stat is None:
        return ""
    return stat.str_value or stat_names.get(stat.ref_value, "")


def live_at_peak(planes):
    """(peak bytes, {kind of the op that allocated: bytes}) for the tensors alive when the
    allocator's bytes in use peaked; the kind is the op name's last component without its _N
    suffix."""
    events = []
    for plane in planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        stat_names = {key: meta.name for key, meta in plane.stat_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                kind = names.get(event.metadata_id, "")
                if kind not in ("MemoryAllocation", "MemoryDeallocation"):
                    continue
                stats = {stat_names.get(st.metadata_id): st for st in event.stats}
                events.append(
                    (
                        line.timestamp_ns * 1000 + event.offset_ps,
                        kind == "MemoryAllocation",
                        stats["addr"].uint64_value or stats["addr"].int64_value,
                        stats["bytes_allocated"].uint64_value
                        or stats["bytes_allocated"].int64_value,
                        stats["allocation_bytes"].uint64_value
                        or stats["allocation_bytes"].int64_value,
                        text(stats.get("tf_op"), stat_names),
                    )
                )
    if not events:
        return 0, {}
    events.sort()
    peak_index = max(range(len(events)), key=lambda i: events[i][3])
    live = {}
    for _, allocation, address, _, size, op in events[: peak_index + 1]:
        if allocation:
            live[address] = (size, op)
        else:
            live.pop(address, None)
    kinds = collections.Counter()
    for size, op in live.values():
        kinds[re.sub(r"_\d+$", "", op.rsplit("/", 1)[-1]) or "?"] += size
    return events[peak_index][3], dict(kinds)


def main(argv):
    from absl import flags

    import run  # noqa: F401  (defines the flags from tfssl.config.Config)

    flags.FLAGS(["profile_step"] + DEFAULT_FLAGS + argv[1:])
    import dataclasses

    from tfssl.benchmark import time_train_step
    from tfssl.config import Config

    given = {
        f.name: flags.FLAGS[f.name].value
        for f in dataclasses.fields(Config)
        if flags.FLAGS[f.name].present
    }
    cfg = Config.for_job(given)
    with tempfile.TemporaryDirectory() as trace_dir:
        step_seconds, _, _, _ = time_train_step(cfg, timed_calls=3, profile_dir=trace_dir)
        paths = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
        planes = read_xspace(paths[0])
        times = op_self_times(planes)
        peak_bytes, live = live_at_peak(planes)
    steps = 3 * cfg.steps_per_loop
    per_step = sorted(((t / steps, name) for name, t in times.items()), reverse=True)
    total = sum(t for t, _ in per_step)
    print(
        json.dumps(
            {
                "figure": "step_profile",
                "precision": cfg.precision,
                "train_batch_size": cfg.train_batch_size,
                "step_time_s": round(step_seconds, 4),
                "op_self_time_per_step_s": round(total, 4),
                "top_ops": [
                    [name, round(t, 4), round(100 * t / total, 1)] for t, name in per_step[:25]
                ],
                "allocator_peak_gib": round(peak_bytes / 2**30, 3),
                "live_at_peak_gib": [
                    [kind, round(size / 2**30, 3)]
                    for kind, size in sorted(live.items(), key=lambda item: -item[1])[:12]
                ],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv)
