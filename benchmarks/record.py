"""Runs one benchmark command and records what it measured, for BENCHMARKS.md.

    python benchmarks/record.py NAME [OPTIONS] -- python run.py --model_dir=runs/bench/NAME ...

While it runs, its stderr (the progress lines) is appended to benchmarks/logs/NAME.log. Then it
writes benchmarks/results/NAME.json with the exact command, the code's commit, the date, the machine
(CPU model, cores, TensorFlow version), the wall time, the CPU steal time and load while it ran, and
what the command produced: the run's result.json (read from its --model_dir) and any JSON lines it
printed (--mode=benchmark). A rerun after a failed attempt (which resumes from its checkpoints)
keeps that attempt under earlier_attempts, and wall_time_s counts every attempt.

The options before `--` say where the run goes in the report, and are written into the record:
  --section=ID         the BENCHMARKS.md section (an id such as mean_teacher; a new id makes a new
                       section, rendered from its records alone until the template gives it prose)
  --label=TEXT         the run's row text in its table
  --table=ID           the table within the section (default: runs)
  --order=N            the row's rank in its table (default: after the ranked rows, by date)
  --cell=COLUMN=TEXT   a further text cell of the row (the same-pass table's precision column)
A rerun that leaves them out keeps those of the failed attempt it resumes. Edit the JSON to move or
relabel a run later. benchmarks/make_report.py renders these files through
benchmarks/BENCHMARKS.template.md into BENCHMARKS.md.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT_FIELDS = ("section", "table", "label", "order", "cells")  # where the run goes in the report


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


def report_fields(name, options):
    """The record's place in the report: the options given, else those of its failed attempt."""
    parser = argparse.ArgumentParser(prog=f"record.py {name}")
    parser.add_argument("--section")
    parser.add_argument("--table")
    parser.add_argument("--label")
    parser.add_argument("--order", type=int)
    parser.add_argument("--cell", action="append", default=[], metavar="COLUMN=TEXT")
    args = parser.parse_args(options)
    path = os.path.join(HERE, "results", f"{name}.json")
    fields = {}
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        fields = {k: previous[k] for k in REPORT_FIELDS if k in previous}
    given = {k: getattr(args, k) for k in ("section", "table", "label", "order")}
    fields.update({k: v for k, v in given.items() if v is not None})
    if args.cell:
        fields["cells"] = dict(cell.split("=", 1) for cell in args.cell)
    return {k: fields[k] for k in REPORT_FIELDS if k in fields}


def main(argv):
    if "--" not in argv[2:] or len(argv) < 4 or argv[1].startswith("-"):
        sys.exit(__doc__)
    dash = argv.index("--", 2)
    name, command = argv[1], argv[dash + 1 :]
    if not command:
        sys.exit(__doc__)
    place = report_fields(name, argv[2:dash])
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
        **place,
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
