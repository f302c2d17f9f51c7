"""How a configuration field is declared: its default, help text, choices and valid range."""

import dataclasses
import re


def is_number_list(text):
    try:
        [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        return False
    return True


def is_regex(text):
    try:
        re.compile(text)
    except re.error:
        return False
    return True


# What a field's value must satisfy, whatever the job: (predicate, what the error says).
POSITIVE = (lambda v: v > 0, "must be positive")
NON_NEGATIVE = (lambda v: v >= 0, "must not be negative")
FRACTION = (lambda v: 0 < v <= 1, "must be in (0, 1]")
PROBABILITY = (lambda v: 0 <= v <= 1, "must be in [0, 1]")
BELOW_ONE = (lambda v: 0 <= v < 1, "must be in [0, 1)")
NUMBER_LIST = (is_number_list, "must be comma-separated numbers")


def numbers_where(holds, requirement):
    """A `valid` pair for a comma-separated list whose every number satisfies `holds`."""
    return (
        lambda text: (
            is_number_list(text) and all(holds(float(v)) for v in text.split(",") if v.strip())
        ),
        f"must be comma-separated numbers, each {requirement}",
    )


def field(default, help, choices=None, valid=None):
    """A dataclass field whose metadata run.py turns into a flag and Config.validate checks."""
    metadata = {"help": help}
    if choices:
        metadata["choices"] = tuple(choices)
    if valid:
        metadata["valid"] = valid
    return dataclasses.field(default=default, metadata=metadata)
