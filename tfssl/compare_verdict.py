"""What a label-efficiency report concludes from its cells: the verdict, two or three sentences in
numbers, and the orderings it checks, on the cells' mean test top-1 accuracy (and, for imbalanced
test sets, again on balanced accuracy: tfssl/compare_report.py).

Each check reads "left >= right - tolerance" and reports its margin, left - (right - tolerance), in
points (>= 0: it holds):
  - a method against the run it starts from (e.g. fine-tuned against its linear probe): the
    tolerance is the larger std of the two cells;
  - a student against its teacher: 0.1 point;
  - every other method against supervised training on the same labels, at the fewest labels: no
    tolerance;
  - each method from the second-largest to the largest label fraction: the larger std of the two
    cells (more labels must not cost more than the spread over seeds).
"""

TEACHER_TOLERANCE = 0.001  # 0.1 point


def share(fraction):
    return "all" if fraction >= 1 else f"{100 * fraction:g}%"


def scale_of(metric):
    return 1.0 if metric in ("auroc", "loss") else 100.0


def digits_of(metric):
    return 3 if metric in ("auroc", "loss") else 2


def mean_std(summary, metric="top_1_accuracy"):
    """'98.83 ± 0.12' (no ± with one seed; '-' when absent)."""
    if summary is None:
        return "-"
    scale, digits = scale_of(metric), digits_of(metric)
    text = f"{scale * summary['mean']:.{digits}f}"
    return text if summary["std"] is None else text + f" ± {scale * summary['std']:.{digits}f}"


def interval(summary, metric="top_1_accuracy"):
    if summary is None or summary["ci_low"] is None:
        return "-"
    scale, digits = scale_of(metric), digits_of(metric)
    return f"[{scale * summary['ci_low']:.{digits}f}, {scale * summary['ci_high']:.{digits}f}]"


def joined(values):
    return "/".join("-" if v is None else str(v) for v in values)


def seeds_text(count):
    return f"{count} seed{'s' if count > 1 else ''}"


def _percent(cell):
    return mean_std(cell["top_1_accuracy"]) + "%"


def _points(difference):
    return f"{abs(100 * difference):.2f} points {'above' if difference >= 0 else 'below'}"


def method_name(labels, method):
    """A method's name in prose: its label if labels (method -> text) has one, else the method."""
    return (labels or {}).get(method, method)


def verdict(cells, labels=None, pairs=()):
    """Two or three sentences in numbers: the best method at the fewest labels against supervised
    training, each method against its teacher or probe (pairs), and any loss from the second-largest
    to the largest fraction beyond the seeds' spread."""

    def name(method):
        return method_name(labels, method)

    def mean(cell):
        return cell["top_1_accuracy"]["mean"]

    by = {(c["method"], c["label_fraction"]): c for c in cells}
    fractions = sorted({c["label_fraction"] for c in cells})
    low, high = fractions[0], fractions[-1]
    sentences = []
    others = [c for c in cells if c["label_fraction"] == low and c["method"] != "supervised"]
    if others:
        best = max(others, key=mean)
        sentence = (
            f"With {share(low)} of the labels ({joined(best['num_labeled_examples'])} images), "
            f"{name(best['method'])} reaches {_percent(best)} ({seeds_text(best['seeds'])})"
        )
        clauses = []
        if ("supervised", high) in by and high != low:
            top = by["supervised", high]
            clauses.append(
                f"{_points(mean(best) - mean(top))} supervised with {share(high)} of the labels "
                f"({_percent(top)})"
            )
        if ("supervised", low) in by:
            same = by["supervised", low]
            clauses.append(
                f"{_points(mean(best) - mean(same))} supervised with the same labels "
                f"({_percent(same)})"
            )
        sentences.append(sentence + (", " + " and ".join(clauses) if clauses else "") + ".")
    compared = [
        f"{name(a)} is {_points(mean(by[a, low]) - mean(by[b, low]))} {name(b)} "
        f"({_percent(by[a, low])} against {_percent(by[b, low])})"
        for a, b in pairs
        if (a, low) in by and (b, low) in by
    ]
    if compared:
        sentences.append(f"At {share(low)} of the labels, " + "; ".join(compared) + ".")
    if len(fractions) > 1:
        before = fractions[-2]
        losses = []
        for cell in cells:
            if cell["label_fraction"] == high and (cell["method"], before) in by:
                previous = by[cell["method"], before]
                spread = max((c["top_1_accuracy"]["std"] or 0.0) for c in (cell, previous))
                if mean(previous) - mean(cell) > spread:
                    losses.append(
                        f"{name(cell['method'])} loses {100 * (mean(previous) - mean(cell)):.2f} "
                        f"points ({_percent(previous)} to {_percent(cell)})"
                    )
        to = f"from {share(before)} to {share(high)} of the labels"
        sentences.append(
            f"Going {to}, " + "; ".join(losses) + ", more than the spread over seeds."
            if losses
            else f"No method loses more than the spread over seeds going {to}."
        )
    return " ".join(sentences)


def _mean(cell, metric):
    return cell[metric]["mean"]


def _std(metric, *cells):
    return max((c[metric]["std"] or 0.0) for c in cells)


def _check(kind, text, fraction, left, right, tolerance, tolerance_text, metric):
    margin = _mean(left, metric) - (_mean(right, metric) - tolerance)
    return {
        "kind": kind,
        "check": text,
        "metric": metric,
        "label_fraction": fraction,
        "left": left[metric],
        "right": right[metric],
        "tolerance": tolerance,
        "tolerance_text": tolerance_text,
        "margin": margin,
        "holds": margin >= -1e-12,
    }


def checks(cells, labels=None, starts=(), teachers=(), metric="top_1_accuracy"):
    """The checks of the module docstring, on the cells' mean `metric` (a cell without it is left
    out). starts: (method, the method it starts from) pairs; teachers: (student, teacher) pairs."""

    def name(method):
        return method_name(labels, method)

    by = {(c["method"], c["label_fraction"]): c for c in cells if c.get(metric) is not None}
    fractions = sorted({fraction for _, fraction in by})
    out = []
    for fraction in fractions:
        for a, b in starts:
            if (a, fraction) in by and (b, fraction) in by:
                left, right = by[a, fraction], by[b, fraction]
                out.append(
                    _check(
                        "start",
                        f"{name(a)} >= {name(b)} - std",
                        fraction,
                        left,
                        right,
                        _std(metric, left, right),
                        "the larger std",
                        metric,
                    )
                )
        for a, b in teachers:
            if (a, fraction) in by and (b, fraction) in by:
                out.append(
                    _check(
                        "teacher",
                        f"{name(a)} >= {name(b)} - 0.1",
                        fraction,
                        by[a, fraction],
                        by[b, fraction],
                        TEACHER_TOLERANCE,
                        "0.1 point",
                        metric,
                    )
                )
    if not fractions:
        return out
    low = fractions[0]
    if ("supervised", low) in by:
        for (method, fraction), cell in by.items():
            if fraction == low and method != "supervised":
                out.append(
                    _check(
                        "supervised",
                        f"{name(method)} >= supervised",
                        low,
                        cell,
                        by["supervised", low],
                        0.0,
                        "none",
                        metric,
                    )
                )
    if len(fractions) > 1:
        before, high = fractions[-2], fractions[-1]
        for (method, fraction), cell in by.items():
            if fraction == high and (method, before) in by:
                previous = by[method, before]
                out.append(
                    _check(
                        "more_labels",
                        f"{name(method)} at {100 * high:g}% >= at {100 * before:g}% - std",
                        high,
                        cell,
                        previous,
                        _std(metric, cell, previous),
                        "the larger std",
                        metric,
                    )
                )
    return out


def checks_table(found):
    """The checks as a Markdown table."""
    lines = [
        "| ordering | labels | left % | right % | tolerance | margin (points) | holds |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in found:
        metric = c.get("metric", "top_1_accuracy")
        left, right = mean_std(c["left"], metric), mean_std(c["right"], metric)
        lines.append(
            f"| {c['check']} | {100 * c['label_fraction']:g}% | {left} | {right} | "
            f"{c['tolerance_text']} ({100 * c['tolerance']:.2f}) | "
            f"{100 * c['margin']:+.2f} | {'yes' if c['holds'] else '**no**'} |"
        )
    return "\n".join(lines)
