"""Dropout schedules: the rate p in [0, 1) in force at each step of a run.

A static arm is a constant. A decay is written `NAME:START:END:SHAPE[:UNTIL]`; in a stream its
progress runs over the whole stream, so a cosine from 0.30 to 0.14 reaches 0.14 at the last
step of the last segment. UNTIL in (0, 1] is the fraction of the run by which the rate reaches
END and then stays there (default 1): early dropout (Liu et al., ICML 2023) is
`early:0.1:0:linear:0.17`. `step` holds START..END constant within each of the stream's segments.

`NAME:calibrated:PROBE_JSON` follows the law p*(D) a probe fitted (law.py): in each segment of
a stream the rate is the law's p* at that segment's token cap in tokens per parameter, clipped
to the rates the probe swept. The cap, not the tokens seen so far, is the D the probe varied
(it held the passes over each cap fixed). The law is copied into the run's settings when the
run starts, so a replay or a worker never needs the probe folder.

`NAME:path:R1,R2,...` holds a fixed rate per cap (the form of the seed's published paths, e.g.
0.18,0.14,0.08,0.04), one rate for each of the stream's caps. `NAME:pressure:LAW_JSON` follows
a pressure law (pressure.py) step by step: at each step x is the current cap's log10(P/U) and y
log10(C/U) with C the tokens seen so far, so the rate changes within a segment as the passes
over its cap grow, clamped to the law's [p_min, p_max]. Its law is copied into the settings too.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace

from ..common import UsageError
from .law import predict
from .pressure import pressure_rate, read_pressure_law

SHAPES = ("cosine", "linear", "exponential", "step")
NAME = re.compile(r"[A-Za-z_][\w.-]*")
STATIC_PREFIX = "static:"  # a static arm's stored name is this and its rate (`static:0.1`)


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
    segments: int = 1  # `step` and `calibrated`: how many constant pieces
    law: dict | None = None  # `calibrated`: the fitted p*(D)
    rates: tuple[float, ...] = ()  # `calibrated`: the rate of each segment, from `for_stream`
    until: float = 1.0  # the fraction of the run by which the rate reaches `end`
    caps: tuple[int, ...] = ()  # `pressure`: the stream's caps, from `for_stream`
    n_params: int = 0  # `pressure`: P
    tokens_per_step: int = 0  # `pressure`: how C grows
    total_steps: int = 0  # `pressure`: to turn progress back into a step

    @property
    def is_static(self) -> bool:
        return self.shape == "constant"

    @property
    def never_drops(self) -> bool:
        """Static 0: the point draws no masks, so it trains through another graph (training/compiled.py)."""
        return self.is_static and self.start == 0

    def for_stream(self, caps: list[int], n_params: int, tokens_per_step: int = 0,
                   steps: list[int] | None = None) -> "Schedule":
        """This schedule over a stream of `caps` (one segment each, of `steps` steps, each step
        `tokens_per_step` tokens: what a pressure arm needs) for a model of `n_params`."""
        if self.shape == "path" and len(self.rates) != len(caps):
            raise UsageError(f"path {self.name} gives {len(self.rates)} rates for a stream of {len(caps)} caps: "
                             "give one rate per cap")
        if self.shape == "pressure":
            if not (n_params and tokens_per_step and steps):
                return self  # not yet set for a run: the estimate prices it at its largest rate
            s = replace(self, segments=len(caps), caps=tuple(caps), n_params=n_params, tokens_per_step=tokens_per_step,
                        total_steps=sum(steps))
            return replace(s, start=s.rate(0.0, 0), end=s.rate(1.0, len(caps) - 1))
        if self.shape != "calibrated":
            return replace(self, segments=max(1, len(caps)))
        lo, hi = self.law["p_range"]
        rates = tuple(min(max(predict(self.law, cap / n_params), lo), hi) for cap in caps)
        return replace(self, segments=len(caps), rates=rates, start=rates[0], end=rates[-1])

    def rate(self, progress: float, segment: int = 0) -> float:
        """The rate at `progress` in [0, 1] of the whole run, inside segment `segment`."""
        t = min(max(progress, 0.0) / self.until, 1.0)
        a, b = self.start, self.end
        if self.shape == "constant":
            return a
        if self.shape == "linear":
            return a + (b - a) * t
        if self.shape == "cosine":
            return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * t))
        if self.shape == "exponential":
            return a * (b / a) ** t
        k = min(segment, self.segments - 1)
        if self.shape == "path":
            return self.rates[min(segment, len(self.rates) - 1)]
        if self.shape == "pressure":
            return self._pressure(progress, segment)
        if self.shape == "calibrated":
            return self.rates[k] if self.rates else a
        # step: segment k of n holds the k-th of n evenly spaced rates from start to end
        n = self.segments
        return a + (b - a) * (k / (n - 1) if n > 1 else 0.0)

    def _pressure(self, progress: float, segment: int) -> float:
        if not self.caps:
            return self.start
        step = round(min(max(progress, 0.0), 1.0) * max(self.total_steps - 1, 0))
        u, seen = self.caps[min(segment, len(self.caps) - 1)], (step + 1) * self.tokens_per_step
        return pressure_rate(self.law, math.log10(self.n_params / u), math.log10(seen / u))

    def rates_at(self, steps: list[int]):
        """The rate at every step of a run whose segments have `steps` steps each (the schedule
        already set for that run's caps), in order."""
        total, step = sum(steps), 0
        for segment, n in enumerate(steps):
            yield from (self.rate((step + i) / max(total - 1, 1), segment) for i in range(n))
            step += n

    def mean_rate(self, steps: list[int]) -> float:
        """The rate averaged over every step of such a run: what a matched static arm uses."""
        return sum(self.rates_at(steps)) / sum(steps)

    def share_dropping(self, steps: list[int]) -> float:
        """The share of such a run's steps that drop anything (rate > 0): the dearer steps."""
        return sum(p > 0 for p in self.rates_at(steps)) / sum(steps)


def static(p: float) -> Schedule:
    p = check_rate(p)
    return Schedule(name=f"{STATIC_PREFIX}{p:g}", start=p, end=p)


def is_calibrated(text: str) -> bool:
    return text.count(":") >= 2 and text.split(":")[1] == "calibrated"


def is_pressure(text: str) -> bool:
    return text.count(":") >= 2 and text.split(":")[1] == "pressure"


def reads_law(text: str) -> bool:
    """A decay that follows a law read from a file once (calibrated, pressure)."""
    return is_calibrated(text) or is_pressure(text)


def _path(text: str) -> Schedule:
    name, _, given = text.split(":", 2)
    try:
        rates = tuple(check_rate(float(r), f"path {name} rate") for r in given.split(","))
    except ValueError:
        raise UsageError(f"bad path {text!r}: expected NAME:path:R1,R2,... with one rate in [0, 1) per cap") from None
    return Schedule(name=name, start=rates[0], end=rates[-1], shape="path", segments=len(rates), rates=rates)


def _name(text: str) -> str:
    name = text.split(":", 1)[0]
    if not NAME.fullmatch(name) or name.startswith("static"):
        raise UsageError(f"bad decay {text!r}: name must be an identifier not starting with 'static'")
    return name


def read_calibration(text: str) -> dict:
    """The law a `NAME:calibrated:PROBE_JSON` decay follows, read from the probe's probe.json."""
    _name(text)
    path = text.split(":", 2)[2]
    try:
        probe = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError) as e:
        raise UsageError(f"decay {text!r}: cannot read probe results {path} ({type(e).__name__})") from None
    law = probe.get("law") if isinstance(probe, dict) else None
    if not law or law.get("form") is None:
        why = (law or {}).get("reason", "it holds no fitted law")
        raise UsageError(f"decay {text!r}: {path} has no law to follow ({why})")
    return law | {"source": str(path)}


def parse_decay(text: str, calibrations: dict | None = None) -> Schedule:
    if is_pressure(text):
        name = _name(text)
        law = (calibrations or {}).get(name) or read_pressure_law(text.split(":", 2)[2]) | {"source": text.split(":", 2)[2]}
        return Schedule(name=name, start=law["p_max"], end=law["p_min"], shape="pressure", law=law)
    if text.count(":") >= 2 and text.split(":")[1] == "path":
        _name(text)
        return _path(text)
    if is_calibrated(text):
        name = _name(text)
        law = (calibrations or {}).get(name) or read_calibration(text)
        lo, hi = law["p_range"]
        return Schedule(name=name, start=hi, end=lo, shape="calibrated", law=law)
    parts = text.split(":")
    if len(parts) not in (4, 5):
        raise UsageError(f"bad decay {text!r}: expected NAME:START:END:SHAPE[:UNTIL], e.g. decay_030_to_014:0.30:0.14:cosine "
                         "or early:0.1:0:linear:0.17, or NAME:calibrated:PROBE_JSON, NAME:path:R1,R2,... or "
                         "NAME:pressure:LAW_JSON")
    name, start, end, shape = parts[:4]
    until = _until(text, parts[4]) if len(parts) == 5 else 1.0
    if until < 1.0 and shape == "step":
        raise UsageError(f"bad decay {text!r}: a step decay changes at segment ends; UNTIL applies to cosine, linear "
                         "and exponential decays")
    _name(text)
    if shape not in SHAPES:
        raise UsageError(f"bad decay {text!r}: unknown shape {shape!r} (choose from {', '.join(SHAPES)}, or calibrated)")
    try:
        a, b = float(start), float(end)
    except ValueError:
        raise UsageError(f"bad decay {text!r}: START and END must be numbers") from None
    check_rate(a, f"decay {name} start")
    check_rate(b, f"decay {name} end")
    if shape == "exponential" and min(a, b) <= 0:
        raise UsageError(f"bad decay {text!r}: an exponential decay needs START and END above 0")
    return Schedule(name=name, start=a, end=b, shape=shape, until=until)


def _until(text: str, field: str) -> float:
    try:
        until = float(field)
    except ValueError:
        until = math.nan
    if not 0.0 < until <= 1.0:
        raise UsageError(f"bad decay {text!r}: UNTIL must be a fraction of the run in (0, 1], got {field!r}")
    return until


def parse_decays(texts: list[str], calibrations: dict | None = None) -> list[Schedule]:
    decays = [parse_decay(t, calibrations) for t in texts]
    names = [d.name for d in decays]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"duplicate decay name(s): {', '.join(dup)}")
    return decays
