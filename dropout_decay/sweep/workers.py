"""Which worker a trial belongs to: this process's tag (host:pid), and whether a local pid lives.

Every trial is tagged with its worker the moment it exists (grid.FastGridSampler.before_trial),
so a worker killed at any later moment leaves a trial that recovery can attribute to a dead process.
"""

from __future__ import annotations

import os
import socket

from optuna.trial import FrozenTrial

def worker_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_local_pid(trial: FrozenTrial) -> int | None:
    """The pid of this trial's worker when it ran on this host and is gone, else None."""
    host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
        return int(pid)
    return None
