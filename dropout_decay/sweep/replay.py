"""Replay: re-run a stored study's grid (or part of it) into a new study in the same storage,
then report, per point, how far the new validation loss moved.

Everything comes from the storage: the settings, the grid and the data fingerprint. On the
same device with the same seeds a CPU replay must be bitwise identical; anything else is a
reproducibility bug (or a different machine) worth knowing about before publishing.
"""

from __future__ import annotations

from dataclasses import replace

import optuna

from ..common import UsageError
from ..design import Settings
from ..model import parse_decays, parse_model_spec, static
from .grid import first_complete


def replay_settings(config: dict, seeds=None, models=None, arms=None, rates=None, device=None) -> Settings:
    """The original settings narrowed to the chosen seeds, models, arms or rates."""
    s = Settings.from_dict(config["settings"])

    def keep(values: list, chosen, what: str, key=lambda v: v) -> list:
        if chosen is None:
            return values
        unknown = set(chosen) - {key(v) for v in values}
        if unknown:
            raise UsageError(f"--{what} {' '.join(map(str, sorted(unknown, key=str)))} not in the stored grid")
        return [v for v in values if key(v) in set(chosen)]

    decays, dropout_rates = s.decays, keep(s.dropout_rates, rates, "dropout-rates")
    if arms is not None:
        if not s.stage.is_stream:
            raise UsageError("--arms applies to stream studies; use --dropout-rates for screen, confirm and probe")
        names = {a.name: a for a in s.arms()}
        keep(list(names), arms, "arms")
        dropout_rates = [p for p in s.dropout_rates if static(p).name in arms]
        decays = [text for text, d in zip(s.decays, parse_decays(s.decays, s.calibrations)) if d.name in arms]
    return replace(s, seeds=keep(s.seeds, seeds, "seeds"),
                   models=keep(s.models, models, "models", key=lambda m: parse_model_spec(m).label),
                   dropout_rates=dropout_rates, decays=decays, device=device or s.device)
    # validated when first run; narrowing keeps it valid (a partial confirm replay may have < 3 seeds)


def replay_name(storage, original: str) -> str:
    names = set(optuna.study.get_all_study_names(storage))
    k = 1
    while f"{original}-replay-{k}" in names:
        k += 1
    return f"{original}-replay-{k}"


def how_computed(trial) -> tuple:
    """Eager, or compiled from which step: runs compare bitwise only when this is the same
    (a trial of 0.7 or before ran eager)."""
    choice = trial.user_attrs.get("compile") or {}
    return (choice.get("compiled", False), choice.get("from_step"))


def reproducible(trial) -> bool:
    """Would the same point, run again alike, give the same bits? Eager CPU training does; compiled
    training does on one thread, but not on several: the same compiled point on 2 threads ended
    1e-7 to 1e-6 nats apart from run to run (torch 2.13's generated CPU kernels)."""
    threads = trial.user_attrs.get("threads", 1)
    return not how_computed(trial)[0] or max(threads if isinstance(threads, list) else [threads]) == 1


def replay_rows(original: optuna.Study, replay: optuna.Study) -> list[dict]:
    """Per replayed point: stored and new val loss, their difference, whether both were computed
    alike (eager, or compiled from the same step on one thread: `reproducible`), and, where they
    were, bitwise identity (final value and every stage's train and val loss)."""
    stored = {tuple(sorted(t.params.items())): t for t in first_complete(original)}
    rows = []
    for t in first_complete(replay):
        key = tuple(sorted(t.params.items()))
        old = stored.get(key)
        alike = old is not None and how_computed(old) == how_computed(t) and reproducible(old) and reproducible(t)
        same = alike and old.value == t.value and [
            (s["train_loss"], s["val_loss"]) for s in old.user_attrs.get("segments", [])] == [
            (s["train_loss"], s["val_loss"]) for s in t.user_attrs.get("segments", [])]
        rows.append({**t.params, "stored_val_loss": old.value if old else None, "replay_val_loss": t.value,
                     "delta_val_loss": (t.value - old.value) if old else None, "alike": alike, "identical": bool(same),
                     "stored_trial": old.number if old else None, "replay_trial": t.number})
    return rows


def replay_summary(rows: list[dict]) -> str:
    """How many points replayed bitwise, of those computed alike, and the largest |delta val loss|."""
    worst = max((abs(r["delta_val_loss"]) for r in rows if r["delta_val_loss"] is not None), default=0.0)
    unlike = sum(not r["alike"] for r in rows if r["stored_trial"] is not None)
    text = f"{sum(r['identical'] for r in rows)}/{len(rows)} points bitwise identical"
    if unlike:
        text += (f" ({unlike} compared compiled with eager, from another step or on several threads, where "
                 "bitwise identity is not expected: for those only the difference says anything)")
    return f"{text}, largest |delta val loss| {worst:.3g}"
