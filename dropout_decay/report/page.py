"""`report.html`: what a researcher looks at first, as plots that open offline.

Every stage: validation and train loss against tokens for every arm (mean over seeds, and each
seed faintly), and the val − train gap. Screen/confirm: validation loss against p per model.
Probe: validation loss against p at each cap with the per-cap optimum and its interval, and
the fitted law p*(D). Stream: the dropout rate in force against tokens for each schedule, the
loss at the end of each segment, and each decay arm's paired difference from the best static
rate per cap with its 95% interval. One copy of plotly.js sits in the run folder
(`plotly.min.js`); figures get fixed ids, so an export from a copied storage is byte-identical.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from ..common import Stage, write_text
from .figures import learning_figures, probe_figures, static_figures, stream_figures
from .map_figures import map_figures

PLOTLY_JS = "plotly.min.js"


def ensure_plotly(folder: Path) -> Path:
    """The run's one copy of plotly.js, written once (and again only if plotly changed)."""
    import plotly
    from plotly.offline import get_plotlyjs

    path = Path(folder) / PLOTLY_JS
    stamp = f"/* plotly.py {plotly.__version__} */\n"
    if not path.is_file() or not path.read_text(encoding="utf-8")[: len(stamp)] == stamp:
        write_text(path, stamp + get_plotlyjs())
    return path


def _table(title: str, rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return ""
    return f"<h2>{html.escape(title)}</h2>" + pd.DataFrame(rows)[columns].to_html(
        index=False, float_format=lambda x: f"{x:.4f}", na_rep="–", border=0)


def comparison_table(comparison: list[dict], primary: list[dict] = (), interaction: list[dict] = ()) -> str:
    """Primary claims first (declared before the run), then the exploratory comparisons."""
    metric = next((r["metric"] for r in comparison), "val_loss").replace("_", " ")
    best = [r for r in comparison if r["best_static"] and r.get("pool", "growing") == "growing"]
    return (_table(f"Primary claims, declared before the run (Holm across them; {metric})",
                   [r | {"ci": f"[{r['ci'][0]:.4f}, {r['ci'][1]:.4f}]"} for r in primary],
                   ["claim", "cap", "against", "n", "estimate", "ci", "p_holm", "holds", "mde_80"])
            + _table(f"Exploratory: decay arms against the best static rate of each segment ({metric})", best,
                     ["model", "segment", "cap", "decay_arm", "static_arm", "n", "mean_diff", "ci_low", "ci_high",
                      "p_holm", "wins", "mde_80", "verdict", "caution"])
            + _table(f"Exploratory: interaction, (decay − best static) growing − fixed pool ({metric}; below 0: "
                     "decay does relatively better as data grows)", list(interaction),
                     ["segment", "cap", "decay_arm", "best_static", "growing_diff_mean", "fixed_diff_mean", "n",
                      "mean_diff", "ci_low", "ci_high", "p_holm", "verdict"]))


def figures_of(a) -> list[go.Figure]:
    """The report's figures for an Analysis, by stage."""
    stage = Stage(a.config["stage"])
    figures = []
    if stage.sweeps_statics:
        figures += static_figures(a.frame, a.selection)
    if stage is Stage.PROBE:
        figures += probe_figures(a.frame, a.probe)
    if stage is Stage.MAP:
        figures += map_figures(a.map["cells"])
    figures += learning_figures(a.trace, stage.arm_key, stage.is_stream)
    if stage.is_stream:
        figures += stream_figures(a.summary, a.comparison)
    return figures


def page(title: str, body: str, plotly_src: str) -> str:
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
            f"<script src=\"{html.escape(plotly_src)}\"></script>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:1400px} table{border-collapse:collapse} "
            "td,th{padding:2px 8px;text-align:right} th{border-bottom:1px solid #999} .verdict{font-size:1.1em}"
            "</style></head><body>\n" + body + "\n</body></html>\n")


def figure_divs(figures: list[go.Figure], prefix: str = "figure") -> str:
    return "\n".join(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"{prefix}-{i}", default_width="100%")
                     for i, fig in enumerate(figures))


def report_page(a, plotly_src: str) -> str:
    """report.html of an Analysis: its provenance, its tables, its figures."""
    config = a.config
    compliance = config["compliance"]
    head = (f"<h1>{html.escape(config['stage'])} run</h1><p>{html.escape(compliance['note'])} · "
            f"mps_compliant: {str(compliance['mps_compliant']).lower()} · grid {config['grid_size']} points · "
            f"dropout-decay {html.escape(config['code_version'])}</p><p><small>{html.escape(config['attribution'])}</small></p>")
    table = comparison_table(a.comparison or [], a.primary or [], a.interaction or [])
    return page(f"dropout-decay {config['stage']} report", head + "\n" + table + "\n" + figure_divs(figures_of(a)), plotly_src)
