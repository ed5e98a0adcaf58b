"""Refuse a setting of the wrong kind before it reaches the arithmetic: a NaN learning rate, an
infinite clip or a string where a list belongs would otherwise train and record nonsense, or fail
far from its cause (a TOML `models = "2x4x96"` iterated as characters)."""

from __future__ import annotations

import math
from dataclasses import fields

from .errors import UsageError

SKIP = {"bool", "str", "dict", "Path"}
INT_LIMIT = 2**63  # what SQLite, numpy and torch hold as a 64-bit integer


def _fits(kind: str, value) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == "int":
        return isinstance(value, int) and -INT_LIMIT < value < INT_LIMIT
    return math.isfinite(value)


def check_kinds(obj, skip: set[str] = frozenset()) -> None:
    """Every int, float and list[...] field of a dataclass holds what its annotation says (None
    where the annotation allows it); floats finite. One line naming the flag otherwise."""
    for f in fields(obj):
        value, kinds = getattr(obj, f.name), [k.strip() for k in str(f.type).split("|")]
        if f.name in skip or (value is None and "None" in kinds):
            continue
        flag = "--" + f.name.replace("_", "-")
        lists = [k[5:-1] for k in kinds if k.startswith("list[")]
        if lists and isinstance(value, list):
            bad = [x for x in value if not _fits(lists[0], x)]
            if bad:
                what = "finite numbers" if lists[0] == "float" else "integers of at most 64 bits" if lists[0] == "int" else lists[0] + " values"
                raise UsageError(f"{flag} takes {what}; got {bad[0]!r}")
        elif lists and not ({"int", "float", "bool"} & set(kinds)):
            raise UsageError(f"{flag} takes a list (in a TOML file: [ ... ]), got {value!r}")
        elif kinds[0] in ("int", "float") and not _fits(kinds[0], value):
            raise UsageError(f"{flag} must be a finite {'64-bit integer' if kinds[0] == 'int' else 'number'}, got {value!r}")
