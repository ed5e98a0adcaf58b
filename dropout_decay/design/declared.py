"""Primary claims, declared before a stream trains: what the run is meant to test, in words a
reader and the code both understand. They are stored with the study's settings before its
first trial, so no claim can be chosen after the results are seen; analysis/primary.py judges
them on test loss, with Holm's correction across the declared family.

    ARM beats every static at CAP          intersection-union over every static rate
    ARM beats OTHER at CAP                 one paired comparison
    ARM helps more as data grows at CAP    the interaction: (ARM - best static) on the growing
                                           stream minus the same on a fixed pool (needs
                                           fixed_pool_controls)

CAP is `last`, a token count among the stream's caps, or `trajectory`: the mean over every cap
of each replicate's loss (the seed's "mean trajectory" loss), the best static chosen on the same
mean of validation loss.
"""

from __future__ import annotations

import re
from typing import Callable

from ..common import UsageError
from ..model import static_rate

TRAJECTORY = "trajectory"  # the cap of a claim on the mean loss over every cap
_CAP = rf"(?P<cap>last|\d+|{TRAJECTORY})"
GRAMMAR = [("every_static", re.compile(rf"(?P<arm>\S+) beats every static at {_CAP}")),
           ("interaction", re.compile(rf"(?P<arm>\S+) helps more as data grows at {_CAP}")),
           ("pair", re.compile(rf"(?P<arm>\S+) beats (?P<other>\S+) at {_CAP}"))]
FORMS = "'ARM beats every static at CAP', 'ARM beats OTHER at CAP' or 'ARM helps more as data grows at CAP'"


def parse_claim(text: str) -> dict:
    for kind, pattern in GRAMMAR:
        m = pattern.fullmatch(" ".join(str(text).split()))
        if m:
            cap = m["cap"]
            return {"text": text, "kind": kind, "arm": m["arm"], "other": m.groupdict().get("other"),
                    "cap": cap if cap in ("last", TRAJECTORY) else int(cap)}
    raise UsageError(f"claim {text!r} is not one of {FORMS} (CAP: last, {TRAJECTORY} or a token count)")


def check_claims(claims: dict | None, arms: list[str] | None, caps: list[int] | None,
                 twinned: Callable[[str], bool]) -> list[dict]:
    """The declared primary claims, each refused in one line if it names what the stream lacks
    (its arms and caps are checked once they are known: `None` skips them)."""
    if not claims:
        return []
    if not isinstance(claims, dict) or set(claims) != {"primary"} or not isinstance(claims["primary"], list):
        raise UsageError("claims must be a table with one key, primary = [\"...\", ...]")
    parsed = [parse_claim(t) for t in claims["primary"]]
    for c in parsed:
        for arm in (c["arm"], c["other"]):
            if arm is not None and arms is not None and arm not in arms:
                raise UsageError(f"claim {c['text']!r}: the stream has no arm {arm!r} (arms: {', '.join(arms)})")
        if c["kind"] == "every_static" and static_rate(c["arm"]) is not None:
            raise UsageError(f"claim {c['text']!r}: a static arm cannot beat every static rate")
        if c["kind"] == "interaction" and not twinned(c["arm"]):
            raise UsageError(f"claim {c['text']!r} needs the arm's fixed-pool twin (fixed_pool_controls = true, "
                             "or a list naming it and the static rates it is held against)")
        if caps is not None and isinstance(c["cap"], int) and c["cap"] not in caps:
            raise UsageError(f"claim {c['text']!r}: {c['cap']:,} is not one of the stream's caps {caps}")
    return parsed
