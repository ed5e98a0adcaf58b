"""The CPU side of training: threads per worker, and glibc's allocator.

Every torch process takes all cores by default, so two workers on a laptop each run twice as
many threads as there are cores and both slow down. Each worker registers its pid in a
per-machine folder while it has points to train (runner.work) and takes cores // (live
workers) threads, unless the user fixed `--threads`: before each point and once a second
inside it, because a worker that joins while another is mid-point would otherwise
oversubscribe the cores until that point ends (spinning OpenMP threads made that several
times slower than one worker). Each trial records its count, or the counts in the order it
used them.

glibc returns large freed blocks to the system at once, so every step's activations and
dropout masks are page-faulted in anew; keeping them (as jemalloc or tcmalloc would) made a
CPU step about 10% faster here. `keep_freed_memory` asks glibc to do so; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile
from pathlib import Path

import torch

from .workers import pid_alive


def registry() -> Path:
    """The folder of live workers' pids: per machine; DROPOUT_DECAY_WORKERS_DIR names a private one
    (the tests use it, so that a run elsewhere on the machine does not count as one of theirs).
    Read when called, so a process that sets the variable after importing us is heard."""
    return Path(os.environ.get("DROPOUT_DECAY_WORKERS_DIR") or Path(tempfile.gettempdir()) / "dropout-decay-workers")


def cores() -> int:
    """The cores this process may use, capped by OMP_NUM_THREADS when the user set it (as on
    a cluster, or to pin several hand-started processes to one thread each)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        n = os.cpu_count() or 1
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return min(n, int(cap)) if cap.isdigit() and int(cap) > 0 else n


def register() -> None:
    registry().mkdir(parents=True, exist_ok=True)
    (registry() / str(os.getpid())).touch()


def unregister() -> None:
    (registry() / str(os.getpid())).unlink(missing_ok=True)


def registered_alive() -> int:
    """dropout-decay workers alive on this machine, this one included if registered; dead ones'
    files are removed."""
    alive = 0
    folder = registry()
    for f in folder.glob("*") if folder.is_dir() else []:
        if f.name.isdigit() and (int(f.name) == os.getpid() or pid_alive(int(f.name))):
            alive += 1
        else:
            f.unlink(missing_ok=True)
    return alive


def live_workers() -> int:
    """dropout-decay workers alive on this machine, this one included (at least 1)."""
    return max(registered_alive(), 1)


def planned_threads(fixed: int | None = None) -> int:
    """The threads a run started now would take: the cores shared with the workers already live."""
    others = registered_alive() - (registry() / str(os.getpid())).exists()
    return fixed or max(1, cores() // (others + 1))


def share(fixed: int | None = None) -> int:
    """Set torch's intra-op threads from now on and return the count."""
    n = fixed or max(1, cores() // live_workers())
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def keep_freed_memory() -> bool:
    """mallopt(M_MMAP_THRESHOLD and M_TRIM_THRESHOLD, 1 GiB) on glibc; True when it took effect."""
    name = ctypes.util.find_library("c")
    if not name or os.uname().sysname != "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False
