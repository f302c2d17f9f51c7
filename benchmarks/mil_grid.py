"""Runs a grid of MNIST-bags MIL trainings (training bags x seeds) in one process and writes one
result.json holding every cell and the mean +- std per number of bags, for benchmarks/record.py:

    flock /work/wt/bench.lock python benchmarks/record.py mil_bags_attention --section=mil \\
        --label="..." -- python benchmarks/mil_grid.py --model_dir=runs/bench/mil_bags_attention \\
        --bags=50,100,150,200,300,400,500 --seeds=0,1,2,3,4 --mil_pooling=attention

Every other --flag=value is a run.py flag given to each cell (--mode=mil is implied). Cell runs
live in MODEL_DIR/bags<N>_seed<S>; a rerun skips cells that finished (and resumes the others).
--workers=2 trains two cells at a time, in two processes (a cell's result does not depend on it:
each run seeds itself; its wall time does). The std is the sample standard deviation over seeds
(ddof=1).
"""

import dataclasses
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCORES = ("auc", "accuracy", "instance_top1_hit_rate", "instance_auc", "best_epoch")


def parse(argv):
    """(grid options, run flags) from --name=value words; run flags get Config's types."""
    from tfssl.config import Config

    types = {f.name: f.type for f in dataclasses.fields(Config)}
    grid = {
        "model_dir": None,
        "bags": "50,100,150,200,300,400,500",
        "seeds": "0,1,2,3,4",
        "workers": "1",
    }
    flags = {}
    for word in argv:
        name, has_value, value = word[2:].partition("=")
        if name in grid:
            grid[name] = value
            continue
        if not has_value and name.startswith("no") and types.get(name[2:]) is bool:
            flags[name[2:]] = False
            continue
        if name not in types:
            sys.exit(f"unknown flag {word}")
        kind = types[name]
        if kind is bool:
            flags[name] = value.lower() in ("", "1", "true")
        else:
            flags[name] = kind(value)
    if not grid["model_dir"]:
        sys.exit("--model_dir is required")
    return grid, flags


def summarize(cells):
    """Per number of training bags: mean, sample std and count of every score over seeds."""
    summary = {}
    for bags in sorted({c["bags"] for c in cells}):
        row = {}
        for score in SCORES + ("train_wall_time_s", "wall_time_s"):
            values = [c[score] for c in cells if c["bags"] == bags and c.get(score) is not None]
            if values:
                std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                row[score] = {"mean": float(np.mean(values)), "std": std, "n": len(values)}
        summary[str(bags)] = row
    return summary


def run_cell(flags, bags, seed, run_dir):
    """Trains one cell (or reads its finished result) and returns its row."""
    import keras

    import tfssl

    start = time.time()
    if os.path.exists(os.path.join(run_dir, "result.json")):
        with open(os.path.join(run_dir, "result.json")) as f:
            result = json.load(f)
    else:
        result = tfssl.run(
            "mil", **{**flags, "mil_train_bags": bags, "seed": seed, "model_dir": run_dir}
        )
    keras.backend.clear_session()
    cell = {"bags": bags, "seed": seed, "run_dir": run_dir, "epochs": result["epochs"]}
    cell.update({k: result["eval"].get(k) for k in SCORES})
    cell["train_wall_time_s"] = result["train_wall_time_s"]
    cell["wall_time_s"] = round(time.time() - start, 1)
    return cell


def main(argv):
    grid, flags = parse(argv)
    from tfssl.train.rundir import write_json

    os.makedirs(grid["model_dir"], exist_ok=True)
    start = time.time()
    jobs = [
        (flags, bags, seed, os.path.join(grid["model_dir"], f"bags{bags}_seed{seed}"))
        for bags in [int(b) for b in grid["bags"].split(",")]
        for seed in [int(s) for s in grid["seeds"].split(",")]
    ]
    workers = int(grid["workers"])
    if workers > 1:  # separate processes (spawned: TensorFlow does not survive a fork)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, max_tasks_per_child=8) as pool:
            futures = [pool.submit(run_cell, *job) for job in jobs]
            cells = [future.result() for future in futures]
    else:
        cells = [run_cell(*job) for job in jobs]
    for cell in cells:
        print(json.dumps(cell), flush=True)
    result = {
        "job": "mil_grid",
        "flags": flags,
        "workers": workers,
        "cells": cells,
        "summary": summarize(cells),
        "grid_wall_time_s": round(time.time() - start, 1),
    }
    write_json(os.path.join(grid["model_dir"], "result.json"), result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
