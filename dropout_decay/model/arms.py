"""A stream's arms as one value: what it is, the rate it applies at a point of training, its twin.

An arm is parsed once from its string: `static:P`, a decay `NAME:START:END:SHAPE[:UNTIL]`
(`UNTIL` < 1 is early dropout), `NAME:calibrated:PROBE_JSON`, `NAME:path:R1,R2,...`,
`NAME:pressure:LAW_JSON` (schedules.py has the grammar).
Its fixed-pool twin `NAME@fixed` runs the same schedule on the final cap from step 0, which
separates decay over training time from decay as data grows (the interaction, the mechanism
test). Stored arm names are these strings, byte for byte; the `@fixed` suffix is spelled here
and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from .schedules import STATIC_PREFIX, Schedule

FIXED = "@fixed"


class ArmKind(StrEnum):
    STATIC = "static"
    DECAY = "decay"  # cosine, linear, exponential over the whole stream
    EARLY = "early"  # such a decay that reaches its end before the stream does, then holds
    STEP = "step"  # constant within each segment
    CALIBRATED = "calibrated"  # follows a probe's fitted law cap by cap
    PATH = "path"  # a fixed rate per cap
    PRESSURE = "pressure"  # follows a pressure law step by step (model/pressure.py)


def is_twin(name: str) -> bool:
    """Is this stored arm name a fixed-pool twin?"""
    return name.endswith(FIXED)


def base_name(name: str) -> str:
    """The growing-stream arm a twin shadows (the name itself for a growing arm)."""
    return name[: -len(FIXED)] if is_twin(name) else name


def twin_name(name: str) -> str:
    return base_name(name) + FIXED


def static_rate(name: str) -> float | None:
    """The rate of a stored static arm's name (`static:0.1`, or its twin `static:0.1@fixed`);
    None for any other arm."""
    base = base_name(name)
    return float(base[len(STATIC_PREFIX):]) if base.startswith(STATIC_PREFIX) else None


@dataclass(frozen=True)
class Arm:
    schedule: Schedule
    fixed_pool: bool = False  # the twin: the same schedule on the final cap throughout

    @property
    def name(self) -> str:
        return twin_name(self.schedule.name) if self.fixed_pool else self.schedule.name

    @property
    def kind(self) -> ArmKind:
        s = self.schedule
        if s.is_static:
            return ArmKind.STATIC
        if s.shape in ("calibrated", "step", "path", "pressure"):
            return ArmKind(s.shape)
        return ArmKind.EARLY if s.until < 1.0 else ArmKind.DECAY

    @property
    def is_static(self) -> bool:
        return self.kind is ArmKind.STATIC

    def twin(self) -> "Arm":
        return replace(self, fixed_pool=True)

    def rate(self, progress: float, segment: int = 0) -> float:
        """The rate in force at `progress` in [0, 1] of the run, in segment `segment` (a schedule
        that follows caps must first be set for the stream with `schedule.for_stream`)."""
        return self.schedule.rate(progress, segment)
