"""Markdown tables of the MNIST-bags MIL records (benchmarks/results/mil_*.json, written by
benchmarks/record.py around benchmarks/mil_grid.py): test AUC and the instance-level score, mean
+- sample std over seeds, one column per pooling and a row per number of training bags.

    python benchmarks/mil_table.py            # prints the tables
"""

import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
POOLINGS = {"attention": "Attention", "gated_attention": "Gated attention", "max": "Max"}


def load(name):
    path = os.path.join(HERE, "results", f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    return record if record.get("exit_code") == 0 and "result" in record else None


def cell(summary, score, digits=3):
    value = summary.get(score)
    return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}" if value else "-"


def grid_table(score, title):
    records = {p: load(f"mil_bags_{p}") for p in POOLINGS}
    records = {p: r for p, r in records.items() if r}
    if not records:
        return ""
    bags = sorted({int(b) for r in records.values() for b in r["result"]["summary"]}, key=int)
    lines = [
        f"| training bags | {' | '.join(POOLINGS[p] for p in records)} |",
        "|---:|" + "---:|" * len(records),
    ]
    for b in bags:
        row = [cell(r["result"]["summary"].get(str(b), {}), score) for r in records.values()]
        lines.append(f"| {b} | {' | '.join(row)} |")
    walls = ", ".join(
        f"{POOLINGS[p]} {r['result']['grid_wall_time_s'] / 60:.0f} min" for p, r in records.items()
    )
    return f"**{title}** (grid wall time: {walls})\n\n" + "\n".join(lines) + "\n"


def encoder_table():
    rows = [
        ("LeNet, from scratch", "mil_bags_attention"),
        ("ResNet-18 (width 0.25), from scratch", "mil_bags50_resnet_scratch"),
        ("ResNet-18, SimCLR encoder, frozen", "mil_bags50_simclr_frozen"),
        ("ResNet-18, SimCLR encoder, fine-tuned", "mil_bags50_simclr_finetune"),
    ]
    lines = [
        "| encoder (attention pooling, 50 bags) | test AUC | instance top-1 hit rate |",
        "|---|---:|---:|",
    ]
    for label, name in rows:
        record = load(name)
        if record:
            summary = record["result"]["summary"]["50"]
            auc, hit = cell(summary, "auc"), cell(summary, "instance_top1_hit_rate")
            lines.append(f"| {label} | {auc} | {hit} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def main():
    print(grid_table("auc", "MNIST-bags test AUC (1000 test bags), mean ± std over 5 seeds"))
    print(
        grid_table(
            "instance_top1_hit_rate",
            "Share of positive test bags whose highest-weighted instance is a 9",
        )
    )
    print(encoder_table())
    others = sorted(glob.glob(os.path.join(HERE, "results", "mil_*.json")))
    print("records:", ", ".join(os.path.basename(p)[:-5] for p in others))


if __name__ == "__main__":
    main()
