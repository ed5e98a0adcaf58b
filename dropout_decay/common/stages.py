"""The kinds of stage a study can be, as one type: every question about a stage is asked of it.

Stored configs hold the plain names (`"stream"`); `Stage` is a `StrEnum`, so a member equals and
serialises as that name and every committed study reads back unchanged. A new kind of stage
(a `map`) is a member here and an answer to each question below, not a string in many files.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import UsageError


class Stage(StrEnum):
    SCREEN = "screen"
    CONFIRM = "confirm"
    PROBE = "probe"
    STREAM = "stream"
    MAP = "map"

    @property
    def is_stream(self) -> bool:
        return self is Stage.STREAM

    @property
    def sweeps_statics(self) -> bool:
        """Screen and confirm: a static curve per model, judged by model selection."""
        return self in (Stage.SCREEN, Stage.CONFIRM)

    @property
    def counts_passes(self) -> bool:
        """Probe and map: each point trains a number of passes over its token limit (its steps
        follow from the limit); a probe is a map of one pass count."""
        return self in (Stage.PROBE, Stage.MAP)

    @property
    def arm_key(self) -> str:
        """The grid factor that names what a point trains: a stream's arm, else a static rate."""
        return "arm" if self is Stage.STREAM else "dropout"

    @property
    def default_seeds(self) -> list[int]:
        return [1, 2] if self is Stage.SCREEN else [1, 2, 3]

    @property
    def exact_seeds(self) -> int | None:
        """How many seeds the stage insists on: a confirm is the 3-seed re-run of the winner."""
        return 3 if self is Stage.CONFIRM else None


STAGE_NAMES = tuple(s.value for s in Stage)
WORKFLOW_ORDER = (Stage.MAP, Stage.SCREEN, Stage.CONFIRM, Stage.PROBE, Stage.STREAM)  # a workflow's stages, in order (a map needs nothing handed over)


def stage_of(name: str) -> Stage:
    """A stage from its stored or typed name; one line naming the choices otherwise."""
    try:
        return Stage(name)
    except ValueError:
        raise UsageError(f"unknown stage {name!r} (choose from {', '.join(STAGE_NAMES)})") from None
