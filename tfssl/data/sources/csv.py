"""csv:PATH: a CSV list of images, `path,label` (optional `split` and `group` columns).

Paths are relative to the CSV's folder (or absolute). Labels are class names (classes sorted by
name) or integers 0..C-1. Without a `split` column every row is in 'train'. A `group` column
(e.g. the patient) is kept and served by groups(split).
"""

import csv
import os

from tfssl.data.sources import SourceOptions
from tfssl.data.sources.files import FileSource
from tfssl.errors import DataError


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


class CsvSource(FileSource):
    def __init__(self, path, options=SourceOptions()):
        if not os.path.isfile(path):
            raise DataError(f"csv dataset {path} does not exist")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        columns = set(rows[0]) if rows else set()
        if not {"path", "label"} <= columns:
            raise DataError(
                f"csv dataset {path} needs the columns path,label (optional split, group); "
                f"it has {', '.join(sorted(columns)) or 'none'}"
            )
        base = os.path.dirname(os.path.abspath(path))
        raw = [row["label"].strip() for row in rows]
        if all(_is_int(v) for v in raw):
            labels = [int(v) for v in raw]
            if min(labels) < 0:
                raise DataError(f"csv dataset {path} has a negative label; use 0..C-1 or names")
            class_names = [str(i) for i in range(max(labels) + 1)]
        else:
            class_names = sorted(set(raw))
            labels = [class_names.index(v) for v in raw]
        files, groups = {}, {}
        for row, label in zip(rows, labels):
            split = (row.get("split") or "train").strip()
            image = os.path.join(base, row["path"].strip())
            if not os.path.exists(image):
                raise DataError(f"csv dataset {path}: {image} does not exist")
            paths, split_labels = files.setdefault(split, ([], []))
            paths.append(image)
            split_labels.append(label)
            groups.setdefault(split, []).append((row.get("group") or "").strip())
        if not files:
            raise DataError(f"csv dataset {path} has no rows")
        if list(files) == ["train"]:
            self.split_hint = " (e.g. --train_split=train[:80%] --eval_split=train[80%:])"
        has_groups = "group" in columns
        super().__init__(f"csv:{path}", files, class_names, options, groups if has_groups else None)
