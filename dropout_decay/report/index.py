"""A workflow's `index.html`: what was chosen at each step and why, the answer, and the key plots.

Rewritten whenever workflow.json changes; the plots of a stage appear once it has finished in
this run (a resumed workflow passes through every stage, so all of them appear again).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from ..common import Stage, write_text
from ..design import ORDER
from .figures import learning_figures, probe_figures, static_figures, stream_figures
from .map_figures import map_figures
from .notes import cap_text
from .page import PLOTLY_JS, figure_divs, page


def index_figures(stage: str, analysis) -> str:
    """The plots a researcher looks at first, per stage, as HTML divs."""
    if not analysis.metrics:
        return ""
    stage = Stage(stage)
    if stage.sweeps_statics:
        figures = static_figures(analysis.frame, analysis.selection)
    elif stage is Stage.PROBE:
        figures = probe_figures(analysis.frame, analysis.probe)
    elif stage is Stage.MAP:
        figures = map_figures(analysis.map["cells"])
    else:
        learning = learning_figures(analysis.trace, "arm", True)
        figures = [learning[0], learning[1], learning[-1], *stream_figures(analysis.summary, analysis.comparison)[1:]]
    return figure_divs(figures, prefix=f"{stage}-figure")


def _num(x, fmt=".4f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _primary_table(primary: list[dict]) -> str:
    """The claims declared before the run, judged as one family: shown before anything exploratory."""
    if not primary:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(r['claim'])}</td><td>{cap_text(r['cap'])}</td>"
        f"<td>{_num(r['estimate'])}</td><td>[{_num(r['ci'][0])}, {_num(r['ci'][1])}]</td><td>{_num(r['p_holm'], '.3f')}</td>"
        f"<td><b>{'yes' if r['holds'] else 'no'}</b></td><td>{_num(r['mde_80'])}</td></tr>" for r in primary)
    metric = primary[0]["metric"].replace("_", " ")
    return (f"<h2>Primary claims, declared before the run</h2><p>On {metric}; Holm across the declared claims; "
            "mde_80: the effect each test would detect with 80% power. Everything below is exploratory.</p>"
            "<table><tr><th>claim</th><th>cap</th><th>Δ</th><th>95% interval</th><th>p (Holm)</th><th>holds</th>"
            f"<th>mde_80</th></tr>{rows}</table>")


def _claims_table(claims: list[dict]) -> str:
    if not claims:
        return ""
    metric = claims[0].get("metric", "val_loss").split("_")[0]
    rows = "".join(
        f"<tr><td>{html.escape(c['decay_arm'])}</td><td>{c['cap']:,}</td>"
        f"<td><b>{'yes' if c['beats_every_static'] else 'no'}</b></td><td>{html.escape(c['deciding_static'])}</td>"
        f"<td>{_num(c['deciding_mean_diff'])}</td><td>[{_num(c['deciding_ci'][0])}, {_num(c['deciding_ci'][1])}]</td>"
        f"<td>{_num(c['p_iut_holm'], '.3f')}</td><td>{c['wins_against_all']}/{c['n']}</td></tr>" for c in claims)
    return ("<h2>Does a decay beat every static rate?</h2><p>Intersection-union test per cap (the static arm it "
            f"beats least decides), Holm-adjusted across caps; Δ = {metric}(decay) − {metric}(static), paired by "
            "replicate.</p>"
            "<table><tr><th>decay arm</th><th>cap</th><th>beats every static</th><th>deciding static</th><th>Δ</th>"
            f"<th>95% interval</th><th>p (IUT, Holm)</th><th>seeds winning vs all</th></tr>{rows}</table>")


def _in_order(by_stage: dict) -> list[tuple]:
    return [(stage, by_stage[stage]) for stage in ORDER if stage in by_stage]


def write_index(out: Path, record: dict, figures: dict[str, str]) -> None:
    status = record["status"]
    head = (f"<h1>Workflow {html.escape(record['workflow'])}: {html.escape(status)}</h1>"
            f"<p>{html.escape(record.get('note', ''))} · config <code>{html.escape(record['config_file'])}</code> · "
            f"<a href=\"workflow.json\">workflow.json</a></p>")
    if record.get("stopped"):
        stop = record["stopped"]
        head += (f"<p class=\"verdict\"><b>Stopped after {html.escape(stop['after'])}:</b> {html.escape(stop['reason'])}."
                 "</p><p>What to try:</p><ul>" + "".join(f"<li>{html.escape(a)}</li>" for a in stop["advice"]) + "</ul>")
    decisions = "".join(f"<tr><td>{html.escape(d['step'])}</td><td>{html.escape(str(d['chosen']))}</td>"
                        f"<td style=\"text-align:left\">{html.escape(d['why'])}</td></tr>" for d in record["decisions"])
    stages = "".join(
        f"<tr><td><a href=\"{html.escape(e['report'])}\">{html.escape(name)}</a></td><td>{html.escape(e['study'])}</td>"
        f"<td>{e.get('complete', 0)}/{e['grid_size']}</td><td>{e.get('failed', 0)}</td>"
        f"<td>{_num(e.get('trained_seconds', 0) / 60, '.1f')}</td></tr>" for name, e in _in_order(record["stages"]))
    body = (head + "<h2>Decisions</h2><table><tr><th>step</th><th>chosen</th><th>why</th></tr>" + decisions + "</table>"
            "<h2>Stages</h2><table><tr><th>stage (report)</th><th>study</th><th>complete</th><th>failed</th>"
            "<th>training minutes</th></tr>" + stages + "</table>"
            + _primary_table(record["stages"].get(Stage.STREAM, {}).get("primary", []))
            + _claims_table(record["stages"].get(Stage.STREAM, {}).get("claims", []))
            + "".join(f"<h2>{html.escape(stage)}</h2>\n{divs}" for stage, divs in _in_order(figures) if divs))
    write_text(Path(out) / "index.html", page(f"dropout-decay workflow {record['workflow']}", body, PLOTLY_JS))
