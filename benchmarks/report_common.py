"""Helpers shared by the report's sections: records, and how their numbers are printed."""

import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def load_records(directory=os.path.join(HERE, "results")):
    records = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path) as f:
            record = json.load(f)
        if record.get("exit_code") == 0:
            records[record["name"]] = record
    return records


def minutes(seconds):
    return f"{seconds / 60:.1f} min"


def top1(record):
    return record["result"]["eval"]["top_1_accuracy"]


def error_percent(record):
    return 100 * (1 - top1(record))


def printed(record, figure):
    return next(line for line in record["printed_json"] if line.get("figure") == figure)


def command_lines(records, names):
    lines = [
        "Commands (run from the repository root; `benchmarks/queue.txt` lists them all):",
        "",
        "```",
    ]
    lines += [records[n]["command"] for n in names if n in records]
    return lines + ["```", ""]


def cores_used(record):
    """The cores the run could use (fewer than the machine's when it was pinned with taskset)."""
    return record["machine"].get("cores_allowed", record["machine"]["cores"])


def machine_name(record):
    """A short CPU name for a table cell."""
    machine = record["machine"]
    name = (
        "Xeon (Sapphire Rapids)" if machine["cpu"].startswith("Intel(R) Xeon") else machine["cpu"]
    )
    if machine.get("avx512") is False:
        name += " (AVX2, no AVX-512)"
    allowed = cores_used(record)
    return (
        name
        if allowed == machine["cores"]
        else f"{name}, pinned to {allowed} of {machine['cores']} cores"
    )
