"""Crash recovery: a grid point whose worker died, or whose last try failed for a transient
reason, is queued again as a WAITING trial on the same grid id, with why.

* RUNNING trials whose worker process on this host is gone are failed and re-queued at once;
* RUNNING trials whose heartbeat went stale (another machine died) are failed by Optuna and
  re-queued by `requeue_stale`, the storage's heartbeat callback;
* on start, points whose last trial failed for a transient reason (interrupted, worker lost)
  are re-queued; deterministic failures (divergence) keep their FAIL unless asked.
"""

from __future__ import annotations

import os
import socket

import optuna
from optuna.trial import FrozenTrial, TrialState

from .grid import trials_by_point

TRANSIENT = ("interrupted", "worker lost")
HOST = socket.gethostname()


def worker_tag() -> str:
    return f"{HOST}:{os.getpid()}"


def requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Queue the failed trial's grid point again as a WAITING trial with the same grid_id."""
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING,
        system_attrs={k: trial.system_attrs[k] for k in ("grid_id", "search_space") if k in trial.system_attrs},
        user_attrs={"retry_of": trial.number, "retry_reason": reason},
    ))


def requeue_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    requeue(study, trial, "worker lost (heartbeat stale)")


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
    if host == HOST and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
        return int(pid)
    return None


def reclaim_dead_local(study: optuna.Study) -> int:
    """Fail and re-queue RUNNING trials whose worker was a process on this host that is gone."""
    n = 0
    for t in study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        pid = dead_local_pid(t)
        if pid is None:
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", f"worker lost (pid {pid} died)")
            if study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                requeue(study, t, f"worker lost (pid {pid} died)")
                n += 1
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    return n


def requeue_failed(study: optuna.Study, all_failures: bool = False) -> int:
    """Re-queue points whose latest trial failed and nothing else holds them."""
    n = 0
    for trials in trials_by_point(study).values():
        if any(t.state != TrialState.FAIL for t in trials):
            continue
        last = max(trials, key=lambda t: t.number)
        reason = str(last.user_attrs.get("fail_reason", "worker lost"))
        if all_failures or reason.startswith(TRANSIENT):
            requeue(study, last, f"resume after: {reason}")
            n += 1
    return n
