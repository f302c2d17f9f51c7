"""Runs one benchmark command and records what it measured, for BENCHMARKS.md.

    python benchmarks/record.py NAME -- python run.py --mode=... --model_dir=runs/bench/NAME ...

While it runs, its stderr (the progress lines) is appended to benchmarks/logs/NAME.log. Then it
writes benchmarks/results/NAME.json with the exact command, the code's commit, the date, the machine
(CPU model, cores, TensorFlow version), the wall time, the CPU steal time and load while it ran, and
what the command produced: the run's result.json (read from its --model_dir) and any JSON lines it
printed (--mode=benchmark). A rerun after a failed attempt (which resumes from its checkpoints)
keeps that attempt under earlier_attempts, and wall_time_s counts every attempt.
benchmarks/make_report.py turns these files into BENCHMARKS.md.
"""

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_times():
    """(total, steal) jiffies from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values), values[7] if len(values) > 7 else 0


def machine():
    fields = {}  # the first CPU's lines of /proc/cpuinfo
    with open("/proc/cpuinfo") as f:
        for key, _, value in (line.partition(":") for line in f):
            fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or platform.processor()
    flags = fields.get("flags", "").split()
    import importlib.metadata

    return {
        "cpu": model,
        "avx512": "avx512f" in flags,
        "cores": os.cpu_count(),
        "cores_allowed": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "tensorflow": importlib.metadata.version("tensorflow"),
        "keras": importlib.metadata.version("keras"),
    }


def git_commit():
    """The commit of the code the command runs (the working directory's checkout)."""
    out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def flag_value(args, name):
    """The last --name=value in the command, also inside a `bash -c '...'` script."""
    prefix = f"--{name}="
    words = [word for arg in args for word in shlex.split(arg)]
    return next((w[len(prefix) :] for w in reversed(words) if w.startswith(prefix)), None)


def earlier_attempts(name):
    """The failed attempts recorded under NAME so far (a successful record is never rerun)."""
    path = os.path.join(HERE, "results", f"{name}.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        previous = json.load(f)
    if previous["exit_code"] == 0:
        return []
    last = {
        key: previous[key] for key in ("date", "commit", "wall_time_s", "exit_code", "stderr_tail")
    }
    before = previous.get("earlier_attempts", [])
    last["wall_time_s"] = round(last["wall_time_s"] - sum(a["wall_time_s"] for a in before), 1)
    return before + [last]


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.exit(__doc__)
    name, command = argv[1], argv[3:]
    commit = git_commit()  # before the run: the checkout may move while it runs
    total_0, steal_0 = cpu_times()
    load_before = os.getloadavg()[0]
    start = time.time()
    log_path = os.path.join(
        HERE, "logs", f"{name}.log"
    )  # progress lines while it runs (not committed)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "a") as log:
        log_start = log.tell()
        log.write(
            f"=== {datetime.datetime.now().isoformat(timespec='seconds')} {shlex.join(command)}\n"
        )
        log.flush()
        process = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True)
    wall = time.time() - start
    with open(log_path) as log:
        log.seek(log_start)
        stderr = log.read()
    total_1, steal_1 = cpu_times()
    record = {
        "name": name,
        "command": shlex.join(command),
        "commit": commit,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "wall_time_s": round(wall, 1),
        "exit_code": process.returncode,
        "steal_percent": round(100 * (steal_1 - steal_0) / max(total_1 - total_0, 1), 2),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "printed_json": [
            json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")
        ],
        "stdout_tail": process.stdout[-1500:],
        "stderr_tail": stderr[-3000:],
    }
    attempts = earlier_attempts(name)
    if attempts:
        record["earlier_attempts"] = attempts
        record["wall_time_s"] = round(wall + sum(a["wall_time_s"] for a in attempts), 1)
    model_dir = flag_value(command, "model_dir")
    if model_dir and os.path.exists(os.path.join(model_dir, "result.json")):
        with open(os.path.join(model_dir, "result.json")) as f:
            record["result"] = json.load(f)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"{name}.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(f"{name}: exit {process.returncode}, {wall:.0f} s, steal {record['steal_percent']}%")
    return process.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
