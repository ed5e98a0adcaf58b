"""A stage's grid, the sampler that walks it, and where each grid point stands.

Grid points are identified by GridSampler's `grid_id` (its order is fixed by the grid seed,
which the study stores), so every worker agrees on them, even for trials still RUNNING that
have suggested no parameter yet. Finished results are keyed on params.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..design import Settings
from .optuna_internals import system_attrs_of, trial_id


def search_space(s: Settings) -> dict[str, list]:
    """model x seed x dropout x tokens for static sweeps, model x seed x arm for a stream; with
    order seeds, x order_seed after the seed (a study without them has no such dimension)."""
    labels = [m.label for m in s.specs()]
    replicates = {"seed": list(s.seeds)} | ({"order_seed": list(s.order_seeds)} if s.order_seeds is not None else {})
    if s.stage.is_stream:
        return {"model": labels, **replicates, "arm": [a.name for a in s.arms()]}
    return {"model": labels, **replicates, "dropout": list(s.dropout_rates), "tokens": list(s.token_limits)}


@dataclass(frozen=True)
class GridStatus:
    size: int
    complete: int  # points with a COMPLETE trial
    failed: int  # points whose latest trial failed and nothing is queued or running for them
    running: int
    waiting: int
    left: int  # points no trial has touched yet
    durations: tuple[float, ...]  # seconds of the COMPLETE trials


def trials_by_point(study: optuna.Study) -> dict[int, list[FrozenTrial]]:
    """Trials per grid point, leaving out PRUNED ones: those are surplus trials that found
    their point already taken and trained nothing (see `surplus_to`)."""
    out: dict[int, list[FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False):
        gid = t.system_attrs.get("grid_id")
        if t.state == TrialState.PRUNED:
            continue
        if gid is not None:
            out.setdefault(gid, []).append(t)
    return out


def first_complete(study: optuna.Study) -> list[FrozenTrial]:
    """One COMPLETE trial per grid point, the earliest: results are keyed on params."""
    seen, out = set(), []
    for t in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        key = tuple(sorted(t.params.items()))
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def surplus_to(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial | None:
    """The trial that already owns this trial's grid point, if any.

    Workers race at the grid's tail: two may draw the last point, or pop two queued retries of
    one point. The point belongs to its COMPLETE trial, else to the lowest-numbered RUNNING or
    WAITING one; any other trial is surplus and must not train. The rule needs no lock: every
    contender sees the same lowest number."""
    gid, own, number = system_attrs_of(study, trial).get("grid_id"), trial_id(trial), trial.number
    owners = [t for t in trials_by_point(study).get(gid, []) if trial_id(t) != own and (
        t.state == TrialState.COMPLETE or (t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < number))]
    return min(owners, key=lambda t: (t.state != TrialState.COMPLETE, t.number), default=None)


def grid_status(study: optuna.Study, size: int) -> GridStatus:
    by_point = trials_by_point(study)
    counts: Counter = Counter()
    durations = []
    for trials in by_point.values():
        states = {t.state for t in trials}
        if TrialState.COMPLETE in states:
            counts["complete"] += 1
            done = next(t for t in trials if t.state == TrialState.COMPLETE)
            if done.datetime_start and done.datetime_complete:
                durations.append((done.datetime_complete - done.datetime_start).total_seconds())
        elif TrialState.RUNNING in states:
            counts["running"] += 1
        elif TrialState.WAITING in states:
            counts["waiting"] += 1
        else:
            counts["failed"] += 1
    return GridStatus(size, counts["complete"], counts["failed"], counts["running"], counts["waiting"],
                      size - len(by_point), tuple(durations))
