"""The names that the directives of benchmarks/BENCHMARKS.template.md use (make_report.py renders
it): the records, a run's values and table cells, comparisons between runs, tables and lists.

A record key is the record's path under benchmarks/results/ without .json: its name, or
amd_epyc/NAME for the earlier machine's. A directive that reads a record marks its (section,
table) as shown; rec() raises NotMeasured for a run with no successful record.
"""

import fnmatch
import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
R = {}  # record key (its path under results/, without .json) -> record, exit code 0 only
SHOWN = set()  # the (section, table) pairs that a directive showed or hid


class NotMeasured(KeyError):
    pass


def load():
    for path in sorted(glob.glob(os.path.join(RESULTS, "**", "*.json"), recursive=True)):
        with open(path) as f:
            record = json.load(f)
        if record.get("exit_code") == 0:
            R[os.path.relpath(path, RESULTS)[: -len(".json")]] = record


def place(r):
    return r.get("section", "other"), r.get("table", "runs")


def rec(key):
    if key not in R:
        raise NotMeasured(key)
    SHOWN.add(place(R[key]))
    return R[key]


def rows(section, *tables):
    """The keys of a section's records in the given tables ("runs" by default), in order: by
    table, then by `order` (runs without one last), then by date."""
    tables = tables or ("runs",)
    SHOWN.update((section, t) for t in tables)
    keys = [k for k, r in R.items() if place(r)[0] == section and place(r)[1] in tables]
    rank = {k: (tables.index(place(R[k])[1]), R[k].get("order")) for k in keys}
    return sorted(
        keys, key=lambda k: (rank[k][0], rank[k][1] is None, rank[k][1] or 0, R[k]["date"])
    )


def hide(*specs):
    """Marks sections ("id") and tables ("id/table") that no table shows, on purpose."""
    for section, _, table in (spec.partition("/") for spec in specs):
        SHOWN.update(p for p in map(place, R.values()) if p[0] == section and table in ("", p[1]))
    return ""


# A run's values (key: a record key).
def result(key):
    return rec(key)["result"]


def top1(key):
    return result(key)["eval"]["top_1_accuracy"]


def fig(key, figure="pretrain_step"):
    """A JSON line the command printed ("pretrain_step" also finds "pytorch_pretrain_step")."""
    return next(p for p in rec(key)["printed_json"] if p.get("figure", "").endswith(figure))


def flag(key, name):
    """The last --name=value of the run's command, or None."""
    values = [w.split("=", 1)[1] for w in rec(key)["command"].split() if w.startswith(f"--{name}=")]
    return values[-1] if values else None


def cores(key):
    """The cores the run could use (fewer than the machine's when pinned with taskset)."""
    return rec(key)["machine"].get("cores_allowed", rec(key)["machine"]["cores"])


def machine(key):
    m, n = rec(key)["machine"], cores(key)
    name = "Xeon (Sapphire Rapids)" if m["cpu"].startswith("Intel(R) Xeon") else m["cpu"]
    name += " (AVX2, no AVX-512)" if m.get("avx512") is False else ""
    return name if n == m["cores"] else f"{name}, pinned to {n} of {m['cores']} cores"


def score(key):
    """The test top-1 and test error cells (M1, which has no classifier: its test ELBO)."""
    ev = result(key)["eval"]
    if "top_1_accuracy" in ev:
        return [f"{100 * top1(key):.2f}%", f"{100 * (1 - top1(key)):.2f}%"]
    return [f"test ELBO {ev['elbo']:.1f} nats" if "elbo" in ev else "", ""]


# Cells of a run's row, by name (grid() takes them as columns).
CELLS = {
    "label": lambda k: rec(k).get("label", k).replace("|", "\\|"),
    "acc": lambda k: score(k)[0],
    "err": lambda k: score(k)[1],
    "train": lambda k: f"{result(k)['train_wall_time_s'] / 60:.1f} min",
    "wall": lambda k: f"{rec(k)['wall_time_s'] / 60:.1f} min",
    "steps": lambda k: result(k)["global_step"],
    "machine": machine,
    "date": lambda k: rec(k)["date"][:10],
    "finished": lambda k: rec(k)["date"][:16].replace("T", " "),
    "split": lambda k: f"`{result(k)['eval_split']}`",
    "precision": lambda k: rec(k).get("cells", {}).get("precision", fig(k).get("precision")),
    "images": lambda k: fig(k)["images_per_s"],
    "step_time": lambda k: f"{fig(k)['step_time_s']} s",
    "rss": lambda k: f"{fig(k)['peak_rss_gib']} GiB",
}
RUN_TABLE = (  # header, cell, header, cell, ...
    *("run", CELLS["label"], "test top-1", CELLS["acc"], "test error", CELLS["err"]),
    *("training wall time", CELLS["train"], "whole command wall time", CELLS["wall"]),
    *("steps", CELLS["steps"], "machine", machine, "date", CELLS["date"]),
)
BRIEF_TABLE = RUN_TABLE[:2] + RUN_TABLE[8:10] + RUN_TABLE[12:]  # run, wall time, machine, date


# Comparisons.
def verdict(value, limit):
    return "meets it" if value <= limit else f"short by {value - limit:.2f} points"


def before(key, plus):
    """The run that the run's --plus flag names (M1 for M1+M2, by --m1_checkpoint), or None."""
    value = flag(key, plus) if plus else None
    return os.path.basename(value.rstrip("/")) if value else None


def total(key, plus=None):
    """The whole command's minutes, with those of the run before it when plus names its flag."""
    first = before(key, plus)
    return (rec(key)["wall_time_s"] + (rec(first)["wall_time_s"] if first else 0)) / 60


def best(pattern, exclude="", budget=None, plus=None):
    """The most accurate run whose key matches pattern (not exclude), within budget minutes."""
    keys = [k for k in R if fnmatch.fnmatch(k, pattern) and not fnmatch.fnmatch(k, exclude)]
    if budget is not None:  # (runs whose run before was not recorded are left out)
        keys = [k for k in keys if (before(k, plus) or k) in R and total(k, plus) <= budget]
    return max(keys, key=top1) if keys else None


def gap(key, target, label, budget=60, plus=None):
    """A run's test error and wall time against a target error and a time budget."""
    error, spent, first, n = 100 * (1 - top1(key)), total(key, plus), before(key, plus), cores(key)
    over = "within" if spent <= budget else f"{spent - budget:.0f} min over"
    return (
        f"{label}: `{key}` {error:.2f}% test error against {target}%: {verdict(error, target)}; "
        f"{spent:.0f} min{f' with `{first}`' if first else ''} on {n} core{'s' * (n > 1)}, "
        f"{over} the {budget}-min budget."
    )


def span(*keys):
    """The lowest and the highest test error of some runs: "a% to b%"."""
    errors = sorted(100 * (1 - top1(k)) for k in keys)
    return f"{errors[0]:.2f}% to {errors[-1]:.2f}%"


def seeds(label, *keys):
    """The test errors of one recipe run with several seeds, and their mean."""
    errors = [100 * (1 - top1(k)) for k in keys if k in R]
    listed, mean = ", ".join(f"{e:.2f}%" for e in errors), sum(errors) / max(len(errors), 1)
    return f"{label} with {len(errors)} seeds: {listed} (mean {mean:.2f}%)." if errors[1:] else ""


def matching(pattern):
    """The keys of the measured runs whose key matches a glob pattern, sorted."""
    return sorted(k for k in R if fnmatch.fnmatch(k, pattern))


def metric(name, digits=3):
    """A cell: the run's eval metric `name` (balanced_accuracy, auroc, sensitivity, ...) or '-'."""

    def cell(k):
        value = result(k)["eval"].get(name)
        return "-" if value is None else f"{value:.{digits}f}"

    return cell


def spread(keys, name, digits=3):
    """'mean ± std (n runs)' of an eval metric over runs (sample std; one run: its value)."""
    values = [result(k)["eval"][name] for k in keys]
    if not values:
        raise NotMeasured(f"no run for the {name} spread")
    v = mean_std(values)
    return f"{v['mean']:.{digits}f}" + (f" ± {v['std']:.{digits}f}" if v["n"] > 1 else "")


def mean_std(values):
    """{'mean', 'std' (sample, ddof 1; 0 for one value), 'n'} of some numbers."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return {"mean": mean, "std": var**0.5, "n": len(values)}


def mil_cells(pooling):
    """Every cell of a pooling's MNIST-bags grid, one per (bags, seed): the record
    mil_bags_<pooling> and its continuations (_s34: more seeds, _big: more bags)."""
    cells = {}
    for part in ("", "_s34", "_big"):
        if f"mil_bags_{pooling}{part}" in R:
            for c in result(f"mil_bags_{pooling}{part}")["cells"]:
                cells.setdefault((c["bags"], c["seed"]), c)
    if not cells:
        raise NotMeasured(f"mil_bags_{pooling}")
    return [cells[k] for k in sorted(cells)]


def mil_summary(pooling, bags, score="auc", seeds=None):
    """mean_std of a score over a grid row's seeds (all, or those in `seeds`)."""
    values = [
        c[score]
        for c in mil_cells(pooling)
        if c["bags"] == bags and (seeds is None or c["seed"] in seeds)
    ]
    if not values:
        raise NotMeasured(f"mil_bags_{pooling}, {bags} bags")
    return mean_std(values)


def mil_cell(pooling, bags, score="auc", seeds=None):
    """'mean ± std (n)' of a grid row, or 'not run'."""
    try:
        v = mil_summary(pooling, bags, score, seeds)
    except NotMeasured:
        return "not run"
    return f"{v['mean']:.3f} ± {v['std']:.3f} ({v['n']})"


# Tables and lists.
def grid(keys, *columns):
    """A table with a row per run; columns alternate a header and a cell function."""
    heads, cells = columns[::2], columns[1::2]
    lines = ["| " + " | ".join(heads) + " |", "|---" * len(heads) + "|"]
    for k in keys:
        lines.append("|" + "".join(f" {c} |" if c != "" else " |" for c in (f(k) for f in cells)))
    return "\n".join(lines)


def profile(section, table, part):
    """benchmarks/profile_step.py's figures, a column per run: "ops" (the self time of each op
    type among each run's ten slowest) or "memory" (the tensors alive at the allocator's peak)."""
    found = [(fig(k, "step_profile"), CELLS["label"](k)) for k in rows(section, table)]
    head = ["op type" if part == "ops" else "made by"] + [label for _, label in found]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    if part == "ops":
        seconds = {}
        for p, _ in found:
            for op, time_s, _ in p["top_ops"][:10]:
                seconds[op] = max(seconds.get(op, 0.0), time_s)
        for op in sorted(seconds, key=seconds.get, reverse=True):
            entries = [next((e for e in p["top_ops"] if e[0] == op), None) for p, _ in found]
            lines.append([op] + [f"{e[1]:.3f} s ({e[2]:.0f}%)" if e else "" for e in entries])
        lines.append(["step time (profiled)"] + [f"{p['step_time_s']:.3f} s" for p, _ in found])
    else:
        for kind, _ in found[0][0]["live_at_peak_gib"][:8]:
            sizes = [dict(p["live_at_peak_gib"]).get(kind) for p, _ in found]
            lines.append([kind] + [f"{s:.3f}" if s is not None else "" for s in sizes])
        lines.append(
            ["all (allocator peak)"] + [f"{p['allocator_peak_gib']:.3f}" for p, _ in found]
        )
    return "\n".join(x if isinstance(x, str) else "| " + " | ".join(x) + " |" for x in lines)


def commands(section, *tables):
    listed = [R[k]["command"] for k in rows(section, *tables)]
    if not listed:
        raise NotMeasured(f"{section}: no commands")
    head = "Commands (run from the repository root; `benchmarks/queue.txt` lists them all):"
    return "\n".join([head, "", "```", *listed, "```"])


def _report_folder(key):
    return f"benchmarks/reports/{R[key]['name']}"


def reports(section, table="reports"):
    """Each --mode=compare run's report.md (copied with its figures to benchmarks/reports/NAME/),
    from its first table to its list of runs (left in the folder), under a heading with the
    whole command's wall time, the machine and the load while it ran."""
    out = []
    for k in rows(section, table):
        folder = _report_folder(k)
        with open(os.path.join(os.path.dirname(HERE), folder, "report.md")) as f:
            text = f.read()
        end = text.find("Every run:")  # reports before phase 2 have no list of runs
        body = text[text.index("\n|") + 1 : end if end >= 0 else len(text)].strip()
        body = body.replace("](label_efficiency.png)", f"]({folder}/label_efficiency.png)")
        r = R[k]
        out += [
            f"### {r['label']}: {CELLS['wall'](k)} for the whole command on {cores(k)} cores, "
            f"{machine(k)}, {CELLS['date'](k)}\n\n```\n{r['command']}\n```\n",
            f"Load average {r['load_average_before']} before and {r['load_average_after']} after "
            f"({cores(k)} cores); the full report (every run, with its val numbers and choices): "
            f"`{folder}/report.md`.\n",
            body,
            f"\n![confusion matrix of the best run]({folder}/confusion_matrix.png)\n",
        ]
        if os.path.exists(os.path.join(os.path.dirname(HERE), folder, "pretrain_curves.png")):
            out.append(f"![pretraining curves]({folder}/pretrain_curves.png)\n")
    return "\n".join(out)


def compare_report(key):
    """report.json of a --mode=compare record (benchmarks/reports/NAME/report.json)."""
    rec(key)
    with open(os.path.join(os.path.dirname(HERE), _report_folder(key), "report.json")) as f:
        return json.load(f)


def compare_cell(key, method, fraction, metric="top_1_accuracy"):
    """A cell's summary of metric (mean, std, n, interval) in a --mode=compare record's report."""
    cell = next(
        c
        for c in compare_report(key)["cells"]
        if c["method"] == method and c["label_fraction"] == fraction
    )
    return cell[metric]


def auroc(key, method, fraction):
    """'0.859': a compare cell's mean AUROC."""
    return f"{compare_cell(key, method, fraction, 'auroc')['mean']:.3f}"


def pct(summary):
    """'99.41 ± 0.05%' of a cell's summary."""
    text = f"{100 * summary['mean']:.2f}"
    return (text if summary["std"] is None else text + f" ± {100 * summary['std']:.2f}") + "%"


def target(key, method, fraction, threshold):
    """A cell against an absolute target: '99.41 ± 0.05% (target 99.3%: met, +0.11)'."""
    summary = compare_cell(key, method, fraction)
    gap = 100 * (summary["mean"] - threshold)
    verdict = "met" if gap >= 0 else "**missed**"
    return f"{pct(summary)} (target {100 * threshold:g}%: {verdict}, {gap:+.2f} points)"


def beats(key, method, fraction, others, points=0.0, std_of=(), metric="top_1_accuracy"):
    """A cell against the best of other cells plus `points`, less the larger std of the cells in
    std_of ("pair": the cell and that best one): '97.10 ± 0.20% against 95.30 ± 0.40% + 1.5
    (met, +0.30)'."""
    left = compare_cell(key, method, fraction, metric)
    rights = [(m, compare_cell(key, m, fraction, metric)) for m in others]
    name, right = max(rights, key=lambda mr: mr[1]["mean"])
    if std_of == "pair":
        std_of = (method, name)
    spread = max([(compare_cell(key, m, fraction, metric)["std"] or 0.0) for m in std_of] or [0.0])
    gap = 100 * (left["mean"] - (right["mean"] + points / 100 - spread))
    verdict = "met" if gap >= 0 else "**missed**"
    terms = f" + {points:g}" if points else ""
    terms += f" - {100 * spread:.2f} (std)" if std_of else ""
    return f"{pct(left)} against {name} {pct(right)}{terms} ({verdict}, {gap:+.2f} points)"


def paired(key, method, other, fraction, metric="top_1_accuracy", other_key=None):
    """method less other, seed by seed (one seed's runs share their labels), over the seeds of a
    compare record (other's runs from other_key's record if given): '+1.30 ± 2.10 points (95%
    interval [-0.20, 2.80], 10 seeds, 7 above)'."""
    from tfssl.stats import summarize

    def scores(record, name):
        rows = compare_report(record)["rows"]
        return {
            r["seed"]: r[metric]
            for r in rows
            if r["label_fraction"] == fraction and r["method"] == name
        }

    left, right = scores(key, method), scores(other_key or key, other)
    gaps = [100 * (left[seed] - right[seed]) for seed in left if seed in right]
    s = summarize(gaps)
    above = sum(g > 0 for g in gaps)
    return (
        f"{s['mean']:+.2f} ± {s['std']:.2f} points (95% interval [{s['ci_low']:+.2f}, "
        f"{s['ci_high']:+.2f}], {len(gaps)} seeds, {above} above)"
    )


def student(
    key, fraction, method="simclr_distill", teacher="simclr", tolerance=0.1, metric="top_1_accuracy"
):
    """A distilled cell against its teacher's less tolerance (points): '98.90% against 99.11% -
    0.1 (**missed**, -0.11 points)'."""
    left = compare_cell(key, method, fraction, metric)
    right = compare_cell(key, teacher, fraction, metric)
    gap = 100 * (left["mean"] - right["mean"]) + tolerance
    verdict = "met" if gap >= 0 else "**missed**"
    return f"{pct(left)} against {pct(right)} - {tolerance:g} ({verdict}, {gap:+.2f} points)"


def more_labels(key, methods, low=0.1, high=1.0):
    """Whether each method at `high` keeps its accuracy at `low` less the larger std of the two
    cells: 'none loses more than its std' or the losers with their numbers."""
    losers = []
    for m in methods:
        a, b = compare_cell(key, m, low), compare_cell(key, m, high)
        spread = max(a["std"] or 0.0, b["std"] or 0.0)
        if b["mean"] < a["mean"] - spread:
            loss = 100 * (a["mean"] - b["mean"])
            losers.append(f"**{m} loses {loss:.2f}** ({pct(a)} to {pct(b)})")
    return "; ".join(losers) if losers else "none loses more than its std"


def compare_train_minutes(key, method):
    """Minutes of training of a method's runs in a --mode=compare record's report."""
    cells = compare_report(key)["cells"]
    return sum(c["train_wall_time_s"] for c in cells if c["method"] == method) / 60


def machines():
    """A line per machine (CPU, cores, versions) that made a record."""
    line = "- {cpu}, {cores} cores; Python {python}, TensorFlow {tensorflow}, Keras {keras}."
    return "\n".join(sorted({line.format(**r["machine"]) for r in R.values()}))


def field(name):
    """One field of every record, such as steal_percent."""
    return [r[name] for r in R.values()]


def diff(a, b):
    """The points of test top-1 by which run a beats run b."""
    return 100 * (top1(a) - top1(b))


def points(x):
    return f"{abs(x):.2f} points {'above' if x >= 0 else 'below'}"


def bold(cell):
    return lambda k: f"**{cell(k)}**"


def table(section, *tables):
    """The runs of a section's tables ("runs" by default) with their test accuracy and times."""
    return grid(rows(section, *tables), *RUN_TABLE)
