"""CPU threads per worker: the machine's cores shared among the dropout-decay workers on it.

Every torch process takes all cores by default, so two workers on a laptop each run twice as
many threads as there are cores and both slow down. Each worker registers its pid in a
per-machine folder; before each point it takes cores // (live workers) threads, unless the
user fixed `--threads`. The count a point ran with is recorded on its trial.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .recovery import pid_alive

REGISTRY = Path(tempfile.gettempdir()) / "dropout-decay-workers"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def register() -> None:
    REGISTRY.mkdir(parents=True, exist_ok=True)
    (REGISTRY / str(os.getpid())).touch()


def unregister() -> None:
    (REGISTRY / str(os.getpid())).unlink(missing_ok=True)


def live_workers() -> int:
    """dropout-decay workers alive on this machine, this one included; dead ones' files are removed."""
    alive = 0
    for f in REGISTRY.glob("*") if REGISTRY.is_dir() else []:
        if f.name.isdigit() and (int(f.name) == os.getpid() or pid_alive(int(f.name))):
            alive += 1
        else:
            f.unlink(missing_ok=True)
    return max(alive, 1)


def share(fixed: int | None = None) -> int:
    """Set torch's intra-op threads for the next point and return the count."""
    n = fixed or max(1, cores() // live_workers())
    torch.set_num_threads(n)
    return n
