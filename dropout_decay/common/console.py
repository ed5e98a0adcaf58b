"""What a long job says on stderr: one-line messages and progress with a rate and an ETA."""

from __future__ import annotations

import sys
import time


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bar(fraction: float, width: int = 20) -> str:
    filled = round(min(max(fraction, 0.0), 1.0) * width)
    return "#" * filled + "." * (width - filled)


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Throttled progress lines: `done/total unit`, the rate and an ETA, at most every `every_s`."""

    def __init__(self, label: str, total: float, unit: str, every_s: float = 2.0):
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.start = self.last = time.perf_counter()

    def update(self, done: float, extra: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        eta = clock((self.total - done) / rate) if rate > 0 and done < self.total else "0m00s"
        log(f"{self.label}: [{bar(done / self.total if self.total else 1.0)}] {_si(done)}/{_si(self.total)} {self.unit}"
            f" | {_si(rate)} {self.unit}/s, ETA {eta}{extra}")


def _si(x: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{suffix}"
    return f"{x:.0f}"
