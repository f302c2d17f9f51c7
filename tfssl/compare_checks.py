"""The orderings a label-efficiency report checks, on the cells' mean test top-1 accuracy.

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


def _mean(cell):
    return cell["top_1_accuracy"]["mean"]


def _std(*cells):
    return max((c["top_1_accuracy"]["std"] or 0.0) for c in cells)


def _check(kind, text, fraction, left, right, tolerance, tolerance_text):
    margin = _mean(left) - (_mean(right) - tolerance)
    return {
        "kind": kind,
        "check": text,
        "label_fraction": fraction,
        "left": left["top_1_accuracy"],
        "right": right["top_1_accuracy"],
        "tolerance": tolerance,
        "tolerance_text": tolerance_text,
        "margin": margin,
        "holds": margin >= -1e-12,
    }


def checks(cells, labels=None, starts=(), teachers=()):
    """The checks of the module docstring. starts: (method, the method it starts from) pairs;
    teachers: (student, teacher) pairs."""
    labels = labels or {}

    def name(method):
        return labels.get(method, method)

    by = {(c["method"], c["label_fraction"]): c for c in cells}
    fractions = sorted({c["label_fraction"] for c in cells})
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
                        _std(left, right),
                        "the larger std",
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
                    )
                )
    low = fractions[0]
    if ("supervised", low) in by:
        for cell in cells:
            if cell["label_fraction"] == low and cell["method"] != "supervised":
                out.append(
                    _check(
                        "supervised",
                        f"{name(cell['method'])} >= supervised",
                        low,
                        cell,
                        by["supervised", low],
                        0.0,
                        "none",
                    )
                )
    if len(fractions) > 1:
        before, high = fractions[-2], fractions[-1]
        for cell in cells:
            if cell["label_fraction"] == high and (cell["method"], before) in by:
                previous = by[cell["method"], before]
                out.append(
                    _check(
                        "more_labels",
                        f"{name(cell['method'])} at {100 * high:g}% >= at {100 * before:g}% - std",
                        high,
                        cell,
                        previous,
                        _std(cell, previous),
                        "the larger std",
                    )
                )
    return out


def _accuracy(summary):
    text = f"{100 * summary['mean']:.2f}"
    return text if summary["std"] is None else text + f" ± {100 * summary['std']:.2f}"


def checks_table(found):
    """The checks as a Markdown table."""
    lines = [
        "| ordering | labels | left % | right % | tolerance | margin (points) | holds |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in found:
        lines.append(
            f"| {c['check']} | {100 * c['label_fraction']:g}% | {_accuracy(c['left'])} | "
            f"{_accuracy(c['right'])} | {c['tolerance_text']} ({100 * c['tolerance']:.2f}) | "
            f"{100 * c['margin']:+.2f} | {'yes' if c['holds'] else '**no**'} |"
        )
    return "\n".join(lines)
