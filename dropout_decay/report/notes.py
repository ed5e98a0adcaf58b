"""The Markdown note each study carries into optuna-dashboard: its stage's verdict in a table.

Written into the storage (optuna-dashboard's note API) at every export, only when its text
changed, so any dashboard opened on the storage shows it.
"""

from __future__ import annotations

import math

import optuna

from ..analysis import claims
from ..common import Stage
from ..model import formula
from ..sweep import replay_summary
from .figures import model_name


def _num(x, fmt=".4f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def static_note(config: dict, selection: list[dict]) -> str:
    lines = [f"## {config['stage']}: where does validation loss bottom out in p?", "",
             f"*{config['compliance']['note']}*; grid {config['grid_size']} points.", "",
             "| model | tokens | best p | val loss | plateau | dip / seed std | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in selection:
        plateau = f"{r['plateau_low']:g}–{r['plateau_high']:g}"
        lines.append(f"| {model_name(r['model'], r['model_shape'])} | {r['cap']:,} | {r['best_p']:g} | {_num(r['best_val_loss'])} "
                     f"| {plateau} | {_num(r['dip_over_std'], '.1f')} | {r['verdict']} |")
    candidates = [r["model"] for r in selection if r["candidate"]]
    lines += ["", f"**Candidates for confirm:** {', '.join(candidates)}" if candidates
              else "**No model has an interior nonzero optimum deeper than seed noise.**"]
    return "\n".join(lines)


def cap_text(cap) -> str:
    """A token cap with thousands separators; `trajectory` (the mean over caps) as it is."""
    return "–" if cap is None else cap if isinstance(cap, str) else f"{cap:,}"


def stream_note(config: dict, comparison: list[dict], primary: list[dict] = (), interaction: list[dict] = ()) -> str:
    lock = config.get("lock") or {"model": "?", "source": "not recorded"}
    metric = next((r["metric"] for r in comparison), "val_loss")
    loss = "test loss" if metric == "test_loss" else "val loss"
    lines = ["## stream: does decaying dropout beat every static rate?", "",
             f"*{config['compliance']['note']}*; locked model {lock['model']} ({lock['source']}).", "",
             f"Judged on **{loss}**" + (" (held-out documents no decision saw; the best static rate is chosen on "
                                        "validation)" if metric == "test_loss" else " (a study made before the test split)")
             + f". Paired by replicate: Δ = {loss}(decay) − {loss}(static); below 0, decay is better."]
    if primary:
        lines += ["", "### Primary claims (declared before the run; Holm across them)", "",
                  "| claim | cap | Δ | 95% interval | p (Holm) | holds | mde_80 |", "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['claim']} | {cap_text(r['cap'])} | {_num(r['estimate'])} | "
                  f"[{_num(r['ci'][0])}, {_num(r['ci'][1])}] | {_num(r['p_holm'], '.3f')} | "
                  f"{'**yes**' if r['holds'] else 'no'} | {_num(r['mde_80'])} |" for r in primary]
        lines += ["", "### Exploratory"]
    lines += ["", "*Beats every static* is an intersection-union test (the worst pair decides), Holm-adjusted across caps.", "",
              "| model | segment (cap) | decay arm | beats every static? | deciding static | Δ vs it | 95% interval | p (IUT, Holm) | replicates winning vs all |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in claims(comparison):
        lines.append(f"| {c['model']} | {c['segment']} ({c['cap']:,}) | {c['decay_arm']} | "
                     f"{'**yes**' if c['beats_every_static'] else 'no'} | {c['deciding_static']} | "
                     f"{_num(c['deciding_mean_diff'])} | [{_num(c['deciding_ci'][0])}, {_num(c['deciding_ci'][1])}] | "
                     f"{_num(c['p_iut_holm'], '.3f')} | {c['wins_against_all']}/{c['n']} |")
    lines += ["", "Against the best static rate of each segment:", "",
              "| model | segment (cap) | decay arm | best static | Δ mean | 95% interval | P(improve) | verdict |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    cautions = set()
    for r in (r for r in comparison if r["best_static"] and r.get("pool", "growing") == "growing"):
        lines.append(f"| {r['model']} | {r['segment']} ({r['cap']:,}) | {r['decay_arm']} | {r['static_arm']} "
                     f"| {_num(r['mean_diff'])} | [{_num(r['ci_low'])}, {_num(r['ci_high'])}] | {r['wins']}/{r['n']} "
                     f"| {r['verdict']} |")
        if r["caution"]:
            cautions.add(r["caution"])
    if interaction:
        lines += ["", "Interaction (fixed-pool controls): DiD = (decay − best static) growing − the same on the final "
                  "pool from step 0; below 0, decay does relatively better (against the best static) as data grows:", "",
                  "| segment (cap) | decay arm | best static | growing Δ | fixed Δ | DiD | 95% interval | p (Holm) | verdict |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['segment']} ({r['cap']:,}) | {r['decay_arm']} | {r['best_static']} | {_num(r['growing_diff_mean'])} "
                  f"| {_num(r['fixed_diff_mean'])} | {_num(r['mean_diff'])} | [{_num(r['ci_low'])}, {_num(r['ci_high'])}] "
                  f"| {_num(r['p_holm'], '.3f')} | {r['verdict']} |" for r in interaction]
    return "\n".join(lines + [""] + [f"*{c}.*" for c in sorted(cautions)])


def probe_note(config: dict, probe: dict) -> str:
    lines = ["## probe: how does the best static rate fall as data grows?", "",
             f"*{config['compliance']['note']}*; {config['settings'].get('passes')} passes over each cap.", "",
             "| model | cap | D (tokens/param) | best p | refined p* | 95% interval | plateau | gap at p=0 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in probe["caps"]:
        plateau = f"{min(c['plateau']):g}–{max(c['plateau']):g}" if c["plateau"] else "–"
        lines.append(f"| {c['model']} | {c['cap']:,} | {c['tokens_per_param']:.3g} | {c['best_p']:g} | "
                     f"{c['p_star']:.3f}{' (edge)' if c['edge'] else ''} | [{_num(c['p_star_low'], '.3f')}, "
                     f"{_num(c['p_star_high'], '.3f')}] | {plateau} | {_num(c['gap_at_p0'])} |")
    law = probe["law"]
    if law.get("form"):
        lines += ["", f"**Law:** {formula(law)} ({law['form']}, chosen by {law['criterion']}; D in {law['unit']})."]
    else:
        lines += ["", f"**No law:** {law['reason']}."]
    return "\n".join(lines)


def cell_grid(cells: list[dict], text) -> list[str]:
    """A map's cells as a Markdown table per model, U down and passes across: the heatmap as text."""
    lines = []
    for model in sorted({c["model"] for c in cells}):
        mine = [c for c in cells if c["model"] == model]
        passes = sorted({c["passes"] for c in mine})
        by = {(c["unique_tokens"], c["passes"]): c for c in mine}
        lines += [f"| {model}: U \\ passes | " + " | ".join(f"{k:g}" for k in passes) + " |",
                  "| --- " * (len(passes) + 1) + "|"]
        lines += [f"| {u:,} | " + " | ".join(text(by[u, k]) if (u, k) in by else "" for k in passes) + " |"
                  for u in sorted({c["unique_tokens"] for c in mine})]
        lines.append("")
    return lines


def map_note(m: dict) -> str:
    """The dashboard note of a map: where dropout helps, p* and its gain cell by cell, and each
    law with its held-out error."""
    lines = ["## map: where does dropout help?", "", m["description"] + ".", "",
             "**Best static rate p\\* [bootstrap 95%]**", ""]
    lines += cell_grid(m["cells"], lambda c: f"{c['p_star']:g} [{_num(c['p_star_low'], 'g')}, {_num(c['p_star_high'], 'g')}]")
    lines += ["**Validation loss at p\\* − at p = 0, nats (below 0: dropout helps)**", ""]
    lines += cell_grid(m["cells"], lambda c: _num(c["gain"], "+.3f"))
    for form, law in m["laws"].items():
        if "reason" in law:
            lines.append(f"* **{form} law:** none ({law['reason']})")
            continue
        h = law["held_out"]
        lines.append(f"* **{form} law:** {law['formula']}; leave-one-cell-out |error of p*| {h['law']['p_star_mae']:.3f}, "
                     f"regret {h['law']['regret_mean']:.4f} nats (best single static rate: {h['best_static']['p_star_mae']:.3f}, "
                     f"{h['best_static']['regret_mean']:.4f}; one-variable law: {h['one_variable_law']['p_star_mae']:.3f}, "
                     f"{h['one_variable_law']['regret_mean']:.4f})")
    return "\n".join(lines)


def headline(a) -> str:
    """The run's answer in one line, for the console's closing line and export.json (`a`: an Analysis)."""
    stage = Stage(a.config["stage"])
    if not a.metrics:
        return "no point has completed yet"
    if stage.sweeps_statics:
        return "; ".join(f"{r['model']} at {r['cap']:,} tokens: best p = {r['best_p']:g} "
                         f"(val loss {r['best_val_loss']:.4f} nats), {r['verdict']}" for r in a.selection)
    if stage is Stage.MAP:
        return a.map["description"]
    if stage is Stage.PROBE:
        law = a.probe["law"]
        return f"law {formula(law)}" if law.get("form") else f"no law: {law['reason']}"
    if a.primary:
        return "; ".join(f"{r['claim']}: {'holds' if r['holds'] else 'does not hold'} "
                         f"(Δ {_num(r['estimate'])} nats, p Holm {_num(r['p_holm'], '.3f')})" for r in a.primary)
    last = {}
    for c in claims(a.comparison):
        last[c["decay_arm"]] = c  # rows run through the caps in order: the last cap's stays
    return "; ".join(f"{arm} {'beats' if c['beats_every_static'] else 'does not beat'} every static rate at "
                     f"{c['cap']:,} tokens" for arm, c in last.items()) or "no decay arm to judge"


def replay_note(original: str, rows: list[dict]) -> str:
    return f"\n\n## Replay of `{original}`\n\n{replay_summary(rows).replace('delta', 'Δ')}."


# optuna-dashboard ranks every parameter of a trial; the seeds must be parameters, since the grid
# sampler enumerates them, so the note says how to read their rank instead of hiding it.
SEED_IMPORTANCE = ("*Parameter importance lists `seed` (and `order_seed`) because they are grid factors the "
                   "sampler enumerates, not hyperparameters: read their importance as the noise floor. A "
                   "setting matters only where it ranks above them.*")


def refresh_note(study: optuna.Study, body: str) -> None:
    """Write the note only when its text changed (optuna-dashboard keeps every version)."""
    from optuna_dashboard import get_note, save_note  # the note API; imported late, it brings a web server

    body = f"{body}\n\n{SEED_IMPORTANCE}" if body else body
    if get_note(study) != body:
        save_note(study, body)
