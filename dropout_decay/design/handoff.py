"""Handoffs between stages: which model a stream locks, and on what evidence.

By hand (`--models winner=SPEC`), from a confirm run folder (`--lock-from`), or inside a
workflow from the confirm study's own selection (workflow.py). Whatever the source, the lock
is recorded in the stream's config.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..common import Stage, UsageError
from .settings import Settings


def best_candidate(selection: list[dict]) -> dict | None:
    """The candidate (interior, nonzero, deeper than seed noise) with the lowest val loss."""
    candidates = [r for r in selection if r["candidate"]]
    return min(candidates, key=lambda r: (r["best_val_loss"], r["model"])) if candidates else None


def lowest_loss(selection: list[dict]) -> dict | None:
    """The model whose best rate reached the lowest val loss, candidate or not: what a stream whose
    arms are named in its file locks when dropout helped no screened model (the question of
    whether a decay beats every static rate stands even when the best static rate is 0)."""
    return min(selection, key=lambda r: (r["best_val_loss"], r["model"])) if selection else None


def lock_record(best: dict, source: str, **where) -> dict:
    return {"source": source, **where, "model": f"winner={best['model_shape']}", "selected_label": best["model"],
            "confirm_best_p": best["best_p"], "confirm_plateau": best["plateau"], "verdict": best["verdict"],
            "dip_over_std": best.get("dip_over_std")}


def lock_model(s: Settings) -> tuple[Settings, dict | None]:
    """The stream's settings with its model locked, and the record of where the lock came from."""
    if not s.stage.is_stream:
        return s, None
    if not s.lock_from:
        return s, {"source": "given by hand", "model": str(s.specs()[0])}
    run = Path(s.lock_from)
    try:
        selection = json.loads((run / "model_selection.json").read_text())
    except (OSError, ValueError):
        raise UsageError(f"--lock-from {s.lock_from}: no readable model_selection.json") from None
    config_path = run / "config.json"
    if not config_path.is_file() or json.loads(config_path.read_text()).get("stage") != Stage.CONFIRM:
        raise UsageError(f"--lock-from {s.lock_from} is not a confirm run")
    best = best_candidate(selection)
    if best is None:
        raise UsageError(f"--lock-from {s.lock_from}: no model there has an interior nonzero optimum")
    lock = lock_record(best, "confirm run", run=str(run.resolve()))
    return replace(s, models=[lock["model"]]), lock
