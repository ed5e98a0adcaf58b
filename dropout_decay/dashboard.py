"""Inspection in optuna-dashboard: each study carries its stage's verdict as a Markdown note.

The note is written into the storage (optuna-dashboard's note API) whenever artefacts are
exported, only when its text changed, so any dashboard opened on the storage shows it.
`python -m dropout_decay.study dashboard` serves the storage on loopback only: the dashboard
can edit studies and has no authentication.
"""

from __future__ import annotations

import math

import optuna
from optuna_dashboard import get_note, run_server, save_note

from .replay import replay_summary


def _num(x, fmt=".4f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def static_note(config: dict, selection: list[dict]) -> str:
    lines = [f"## {config['stage']}: where does validation loss bottom out in p?", "",
             f"*{config['compliance']['note']}*; grid {config['grid_size']} points.", "",
             "| model | tokens | best p | val loss | plateau | dip / seed std | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in selection:
        plateau = f"{r['plateau_low']:g}–{r['plateau_high']:g}"
        lines.append(f"| {r['model']} ({r['model_shape']}) | {r['cap']:,} | {r['best_p']:g} | {_num(r['best_val_loss'])} "
                     f"| {plateau} | {_num(r['dip_over_std'], '.1f')} | {r['verdict']} |")
    candidates = [r["model"] for r in selection if r["candidate"]]
    lines += ["", f"**Candidates for confirm:** {', '.join(candidates)}" if candidates
              else "**No model has an interior nonzero optimum deeper than seed noise.**"]
    return "\n".join(lines)


def stream_note(config: dict, comparison: list[dict]) -> str:
    lock = config.get("lock") or {"model": "?", "source": "not recorded"}
    lines = ["## stream: does decaying dropout beat the best static rate?", "",
             f"*{config['compliance']['note']}*; locked model {lock['model']} ({lock['source']}).", "",
             "Paired by seed: Δ = val loss(decay) − val loss(best static rate of that stage); below 0, decay is better.", "",
             "| model | stage (cap) | decay arm | best static | Δ mean | 95% interval | wins | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    cautions = set()
    for r in (r for r in comparison if r["best_static"]):
        lines.append(f"| {r['model']} | {r['stage']} ({r['cap']:,}) | {r['decay_arm']} | {r['static_arm']} "
                     f"| {_num(r['mean_diff'])} | [{_num(r['ci_low'])}, {_num(r['ci_high'])}] | {r['wins']}/{r['n']} "
                     f"| {r['verdict']} |")
        if r["caution"]:
            cautions.add(r["caution"])
    return "\n".join(lines + [""] + [f"*{c}.*" for c in sorted(cautions)])


def replay_note(original: str, rows: list[dict]) -> str:
    identical, worst = replay_summary(rows)
    return (f"\n\n## Replay of `{original}`\n\n{identical} of {len(rows)} replayed points are bitwise identical; "
            f"largest |Δ val loss| = {worst:.3g}.")


def refresh_note(study: optuna.Study, body: str) -> None:
    if get_note(study) != body:
        save_note(study, body)


def serve(storage, host: str, port: int) -> None:
    """Blocks until Ctrl-C."""
    run_server(storage, host=host, port=port)
