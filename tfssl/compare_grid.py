"""A compared method's grid: one run per combination of flag values, the validation split
choosing (Spec.grid in tfssl/compare_methods.py)."""

import itertools

from tfssl.train.selection import best_of

SHORT = {"learning_rate": "lr", "crop_min_area": "crop"}


def combinations(cfg, grid):
    """A list of {run flag: value}, one per combination of the comparison flags' values (one
    empty dict when the grid is empty or its lists are)."""
    axes = [
        [(flag, value) for value in cfg.float_list(values)]
        for flag, values in grid
        if cfg.float_list(values)
    ]
    return [dict(combination) for combination in itertools.product(*axes)]


def candidate_name(flags):
    """A grid run's directory name, e.g. lr0.02_crop0.8."""
    return "_".join(f"{SHORT.get(k, k)}{v:g}" for k, v in flags.items()) or "recipe"


def choose(tried, metric):
    """What the grid tried and chose: the run whose chosen checkpoint scores best on validation
    (tfssl/train/selection.py's order; the first of equals). tried: [{flags, run_dir, result}]."""
    best = best_of([t["result"]["selection"]["best"] for t in tried], metric)
    winner = next(t for t in tried if t["result"]["selection"]["best"] is best)
    return {
        "metric": metric,
        "chosen": winner["flags"],
        "chosen_run_dir": winner["run_dir"],
        "train_wall_time_s": sum(t["result"]["train_wall_time_s"] for t in tried),
        "candidates": [
            {
                "flags": t["flags"],
                "run_dir": t["run_dir"],
                "val": t["result"]["selection"]["best"],
                "train_wall_time_s": t["result"]["train_wall_time_s"],
            }
            for t in tried
        ],
    }


def kept_recipe(run, metric, min_examples):
    """What a grid records when its validation split has fewer than min_examples images, too few
    to choose: it keeps one run, of the recipe's values (run: {flags, run_dir, result})."""
    record = choose([run], metric)
    record["too_small"] = {
        "num_val_examples": run["result"].get("num_val_examples"),
        "min_val_examples": min_examples,
    }
    return record
