"""The work loop: train grid points until none is left, and say where a study stands.

The study storage is the source of truth (storage.py); any number of workers (processes,
machines) can run `work()` on one study. Before every point, dead workers' points are
re-queued (recovery.py); a trial that finds its point already owned trains nothing and is
PRUNED with `surplus_to` (grid.surplus_to).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from ..common import bar, check, clock, log
from . import cpu
from .grid import GridStatus, grid_status, trials_by_point
from .provenance import load_config
from .recovery import reclaim_dead_local
from .workers import dead_local_pid

POLL_S = 1.0  # how often a worker with nothing left to train looks again: at a grid's end it waits this long at most


def describe_point(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items())


def work(study: optuna.Study, objective: Callable[[optuna.Trial], float], poll_s: float = POLL_S,
         say: Callable[[str], None] = log, after_point: Callable[[float, GridStatus], None] = lambda s, g: None,
         jobs: Callable[[], int] = lambda: 1) -> GridStatus:
    """Train points until the grid is done, waiting for points other live workers hold.
    This process counts as a live worker on this machine (cpu.py shares the cores among them)
    only while it has points to train: waiting for others' last points, it leaves them its cores.
    After each of its points: `after_point(seconds per point, status)`, and one progress line for
    the whole grid, its ETA shared among `jobs()` local processes."""
    size = study.sampler.size
    mine, seconds = 0, 0.0
    try:
        while True:
            check()
            fail_stale_trials(study)
            reclaim_dead_local(study)
            status = grid_status(study, size)
            if status.left or status.waiting:
                cpu.register()
                ran: list[FrozenTrial] = []
                study.optimize(objective, n_trials=1, gc_after_trial=False, callbacks=[lambda _, t: ran.append(t)])
                if getattr(objective, "interrupted", False):
                    raise KeyboardInterrupt
                if not ran or ran[0].state == TrialState.PRUNED:  # surplus at the tail: someone else has it
                    continue
                mine += 1
                seconds += ran[0].duration.total_seconds() if ran[0].duration else 0.0
                status = grid_status(study, size)
                per_point = seconds / mine
                after_point(per_point, status)
                remaining = status.left + status.waiting + status.running
                finished = status.complete + status.failed
                say(f"[{bar(finished / size)}] {finished}/{size} complete {status.complete}, failed {status.failed}, "
                    f"running {status.running}, left {status.left + status.waiting} | "
                    f"{per_point:.1f}s/point, ETA {clock(per_point * remaining / max(jobs(), 1))}")
            elif status.running:
                cpu.unregister()
                time.sleep(poll_s)
            else:
                return status
    finally:
        cpu.unregister()


FIXES = (  # what to do about a kind of failure, by how its reason begins
    ("diverged", "try a lower --lr, then rerun with --retry-failed"),
    ("error: OutOfMemoryError", "train in parts (--micro-batch, --memory-budget) or choose a smaller model or batch, "
                                "then rerun with --retry-failed"),
    ("interrupted", "rerun the same command: it resumes them"),
    ("worker lost", "rerun the same command: it resumes them"),
)


def failed_points(study: optuna.Study) -> list[FrozenTrial]:
    """The latest trial of each grid point that failed and that nothing else holds."""
    return [max(ts, key=lambda t: t.number) for ts in trials_by_point(study).values()
            if all(t.state == TrialState.FAIL for t in ts)]


def failure_lines(study: optuna.Study) -> list[str]:
    """One line per kind of failure: how many points, the first one and its reason, and the fix.
    Reasons that differ only in their numbers (a step, a loss) are one kind."""
    kinds: dict[str, list[FrozenTrial]] = {}
    for t in sorted(failed_points(study), key=lambda t: t.number):
        reason = str(t.user_attrs.get("fail_reason", "worker lost"))
        kinds.setdefault(re.sub(r"-?\d[\d.,]*(e[-+]?\d+)?", "N", reason), []).append(t)
    lines = []
    for trials in kinds.values():
        first = trials[0]
        reason = str(first.user_attrs.get("fail_reason", "worker lost"))
        fix = next((f for start, f in FIXES if reason.startswith(start)),
                   "fix the cause (`status` lists every failed point), then rerun with --retry-failed")
        advice = fix.split(", then ")[0]
        if advice in reason:  # the reason gives the advice already: only the way on is left to say
            fix = fix[len(advice) + 2:]
        lines.append(f"failed: {len(trials)} point(s), first trial {first.number} ({describe_point(first.params)}): "
                     f"{reason}; {fix}")
    return lines


def find_previous_run(runs_dir: Path, stage: str, fingerprint: str) -> Path | None:
    """The latest run folder of the same experiment, so rerunning a command resumes it."""
    hits = []
    for cfg in runs_dir.glob(f"{stage}-*/config.json"):
        try:
            if json.loads(cfg.read_text()).get("fingerprint") == fingerprint and (cfg.parent / "study.db").exists():
                hits.append(cfg.parent)
        except (OSError, ValueError):
            continue
    return max(hits, default=None)


def print_status(study: optuna.Study, say: Callable[[str], None] = print) -> GridStatus:
    """Where a study stands. A point whose worker was a process on this host that is gone is
    shown as stale (with its pid), not running: the next run or worker re-queues it."""
    status = grid_status(study, study.sampler.size)
    config = load_config(study)
    stale = []
    for trials in trials_by_point(study).values():
        last = max(trials, key=lambda t: t.number)
        done = any(t.state == TrialState.COMPLETE for t in trials)
        if not done and last.state == TrialState.RUNNING and dead_local_pid(last) is not None:
            stale.append(last)
    failed = failed_points(study)
    say(f"study {study.study_name} ({config['stage']}, {config['compliance']['note']})")
    say(f"  grid {status.size}: complete {status.complete}, running {status.running - len(stale)}, stale {len(stale)}, "
        f"failed {status.failed}, queued {status.waiting}, left {status.left}")
    remaining = status.left + status.waiting + status.running
    if status.durations:
        mean = sum(status.durations) / len(status.durations)
        say(f"  mean {mean:.1f}s per point; ETA for one worker: {clock(mean * remaining)}")
    else:
        say("  no point has finished yet, so no time per point or ETA")
    for t in stale:
        say(f"  stale: trial {t.number} {describe_point(t.params)}: its worker (pid {dead_local_pid(t)}) is gone; "
            "the next run or worker re-queues it")
    for t in failed:
        say(f"  failed: trial {t.number} {describe_point(t.params)}: {t.user_attrs.get('fail_reason', 'worker lost')}")
    return status
