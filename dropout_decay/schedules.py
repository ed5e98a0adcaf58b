"""Dropout schedules: a map from training progress in [0, 1] to a rate p in [0, 1).

A static arm is a constant. A decay is written `NAME:START:END:SHAPE`; in a stream its
progress runs over the whole stream, so a cosine from 0.30 to 0.14 reaches 0.14 at the last
step of the last stage. `step` holds START..END constant within each of the stream's stages.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from .errors import UsageError

SHAPES = ("cosine", "linear", "exponential", "step")
NAME = re.compile(r"[A-Za-z_][\w.-]*")


def check_rate(p: float, what: str = "dropout rate") -> float:
    if not (isinstance(p, (int, float)) and 0.0 <= p < 1.0):
        raise UsageError(f"{what} {p} is outside [0, 1)")
    return float(p)


@dataclass(frozen=True)
class Schedule:
    name: str
    start: float
    end: float
    shape: str = "constant"
    stages: int = 1  # only `step` uses it: how many constant pieces

    @property
    def is_static(self) -> bool:
        return self.shape == "constant"

    def with_stages(self, stages: int) -> "Schedule":
        return replace(self, stages=max(1, stages))

    def rate(self, progress: float) -> float:
        t = min(max(progress, 0.0), 1.0)
        a, b = self.start, self.end
        if self.shape == "constant":
            return a
        if self.shape == "linear":
            return a + (b - a) * t
        if self.shape == "cosine":
            return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * t))
        if self.shape == "exponential":
            return a * (b / a) ** t
        # step: stage k of n holds the k-th of n evenly spaced rates from start to end
        n = self.stages
        k = min(int(t * n), n - 1)
        return a + (b - a) * (k / (n - 1) if n > 1 else 0.0)


def static(p: float) -> Schedule:
    p = check_rate(p)
    return Schedule(name=f"static:{p:g}", start=p, end=p)


def parse_decay(text: str) -> Schedule:
    parts = text.split(":")
    if len(parts) != 4:
        raise UsageError(f"bad decay {text!r}: expected NAME:START:END:SHAPE, e.g. decay_030_to_014:0.30:0.14:cosine")
    name, start, end, shape = parts
    if not NAME.fullmatch(name) or name.startswith("static"):
        raise UsageError(f"bad decay {text!r}: name must be an identifier not starting with 'static'")
    if shape not in SHAPES:
        raise UsageError(f"bad decay {text!r}: unknown shape {shape!r} (choose from {', '.join(SHAPES)})")
    try:
        a, b = float(start), float(end)
    except ValueError:
        raise UsageError(f"bad decay {text!r}: START and END must be numbers") from None
    check_rate(a, f"decay {name} start")
    check_rate(b, f"decay {name} end")
    if shape == "exponential" and min(a, b) <= 0:
        raise UsageError(f"bad decay {text!r}: an exponential decay needs START and END above 0")
    return Schedule(name=name, start=a, end=b, shape=shape)


def parse_decays(texts: list[str]) -> list[Schedule]:
    decays = [parse_decay(t) for t in texts]
    names = [d.name for d in decays]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"duplicate decay name(s): {', '.join(dup)}")
    return decays
