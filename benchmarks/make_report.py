"""Writes BENCHMARKS.md: benchmarks/BENCHMARKS.template.md rendered over benchmarks/results/.

    python benchmarks/make_report.py

Each record (made by benchmarks/record.py) says where it goes: `section` (an id), `table` (an id
within the section; "runs" if absent), `label` (its row's text), `order` (its rank in the table)
and `cells` (more text cells, by column). All prose is in the template, where

    {{ expr }}   is replaced by the value of a Python expression over report_common's names;
    {% stmt %}   runs a statement (to name a value) and prints nothing;
    <!-- ... --> is a note for the template's readers, left out of BENCHMARKS.md.

A line that held directives and renders empty is dropped; a paragraph that names a run with no
successful record renders as "Not measured yet". Measured numbers come from records only: the
template types targets, paper numbers and flags. The (section, table) pairs that no directive
showed or hid are appended, a heading and a table each, so that new work needs records only. The
template's prose is wrapped for its readers; each paragraph is one line in BENCHMARKS.md.
"""

import os
import re

import report_common as rc

DIRECTIVE = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}")


def render(template):
    space = {k: v for k, v in vars(rc).items() if not k.startswith("_")} | rc.CELLS

    def evaluate(match):
        if match.group(2) is not None:
            return exec(match.group(2).strip(), space) or ""
        return str(eval(match.group(1).strip(), space))

    out = []
    for paragraph in re.sub(r"<!--.*?-->\n?", "", template, flags=re.S).split("\n\n"):
        try:
            lines = [(line, DIRECTIVE.sub(evaluate, line)) for line in paragraph.split("\n")]
            out.append("\n".join(text for line, text in lines if text or text == line))
        except rc.NotMeasured as missing:
            out.append(f"Not measured yet: `{missing.args[0]}`.")
    return "\n\n".join(out)


def unshown():
    """The sections and tables that no directive showed, each a heading and a table."""
    places = [rc.place(r) for r in sorted(rc.R.values(), key=lambda r: r["date"])]
    places = [p for p in dict.fromkeys(places) if p not in rc.SHOWN]
    out = []
    for section in dict.fromkeys(s for s, _ in places):
        tables = [t for s, t in places if s == section]
        out.append(f"## {section}")
        for t in tables:
            keys = rc.rows(section, t)
            columns = rc.RUN_TABLE if all("result" in rc.R[k] for k in keys) else rc.BRIEF_TABLE
            out += [f"### {t}"] * (t != "runs") + [rc.grid(keys, *columns)]
        out.append(rc.commands(section, *tables))
    return "\n\n".join(out)


def unwrap(text):
    """Each prose paragraph and list item on one line (tables, code and headings as they are)."""
    out, code, joinable = [], False, False
    for line in text.splitlines():
        code ^= line.startswith("```")
        prose = bool(line.strip()) and not code and not line.startswith(("```", "|", "#", "!["))
        if prose and joinable and not line.startswith("- "):
            out[-1] += " " + line.strip()
        else:
            out.append(line)
        joinable = prose
    return "\n".join(out)


def main():
    rc.load()
    with open(os.path.join(rc.HERE, "BENCHMARKS.template.md")) as f:
        text = render(f.read()) + "\n\n" + unshown()
    with open(os.path.join(os.path.dirname(rc.HERE), "BENCHMARKS.md"), "w") as f:
        f.write(re.sub(r"\n{3,}", "\n\n", unwrap(text)).strip() + "\n")
    print(f"wrote BENCHMARKS.md from {len(rc.R)} records")


if __name__ == "__main__":
    main()
