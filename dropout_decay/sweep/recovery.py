"""Crash recovery: a grid point whose worker died, or whose last try failed for a transient
reason, is queued again as a WAITING trial on the same grid id, with why.

* RUNNING trials whose worker process on this host is gone are failed and re-queued at once;
* RUNNING trials whose heartbeat went stale (another machine died) are failed by Optuna and
  re-queued by `requeue_stale`, the storage's heartbeat callback;
* a RUNNING trial that never got its worker tag (killed between Optuna creating it and the
  sampler tagging it, before any heartbeat) is failed and re-queued once UNTAGGED_S have passed;
* on start, points whose last trial failed for a transient reason (interrupted, worker lost)
  are re-queued; deterministic failures (divergence) keep their FAIL unless asked.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import optuna
from optuna.trial import FrozenTrial, TrialState

from .grid import trials_by_point
from .optuna_internals import fail, set_user_attr_of
from .workers import dead_local_pid, worker_tag

TRANSIENT = ("interrupted", "worker lost")
UNTAGGED_S = 300  # a trial is tagged within milliseconds of its creation; one still untagged this long is lost


def requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Queue the failed trial's grid point again as a WAITING trial with the same grid_id."""
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING,
        system_attrs={k: trial.system_attrs[k] for k in ("grid_id", "search_space") if k in trial.system_attrs},
        user_attrs={"retry_of": trial.number, "retry_reason": reason},
    ))


def requeue_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    requeue(study, trial, "worker lost (heartbeat stale)")


def lost_reason(trial: FrozenTrial) -> str | None:
    """Why a RUNNING trial is lost: its local worker died, or it never got a worker at all."""
    pid = dead_local_pid(trial)
    if pid is not None:
        return f"worker lost (pid {pid} died)"
    if "worker" not in trial.user_attrs and trial.datetime_start is not None \
            and datetime.now() - trial.datetime_start > timedelta(seconds=UNTAGGED_S):
        return "worker lost (died as the trial was created)"
    return None


def reclaim_dead_local(study: optuna.Study) -> int:
    """Fail and re-queue RUNNING trials whose worker was a process on this host that is gone."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = lost_reason(t)
        if reason is None:
            continue
        try:
            set_user_attr_of(study, t, "fail_reason", reason)
            if fail(study, t):
                requeue(study, t, reason)
                n += 1
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    return n


def fail_own_running(study: optuna.Study, reason: str) -> int:
    """Mark this process's RUNNING trials failed with why: a Ctrl-C between Optuna creating a
    trial and the objective starting escapes the objective, which would otherwise record it."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("worker") == worker_tag():
            set_user_attr_of(study, t, "fail_reason", reason)
            n += fail(study, t)
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
