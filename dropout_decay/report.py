"""`report.html`: the run's answer as plots, self-contained (plotly.js inlined) so it opens offline.

Screen/confirm: validation loss against p per model, mean ± std band, every seed's point,
the optimum and the plateau. Stream: validation loss per stage per arm, and each decay arm's
paired difference from the best static rate with its 95% interval. Figures get fixed ids so
an export from a copied storage is byte-identical. PNGs are written only when `kaleido` is
installed.
"""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from .files import write_text

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


def static_figures(metrics: pd.DataFrame, selection: list[dict]) -> list[go.Figure]:
    figures = []
    for rec in selection:
        rows = metrics[(metrics["model"] == rec["model"]) & (metrics["cap"] == rec["cap"])]
        p, mean = rec["rates"], rec["mean_val_loss"]
        std = [s or 0.0 for s in rec["std_val_loss"]]
        fig = go.Figure()
        if rec["n_seeds"] > 1:
            fig.add_trace(go.Scatter(x=p + p[::-1], y=[m + s for m, s in zip(mean, std)] + [m - s for m, s in zip(mean, std)][::-1],
                                     fill="toself", fillcolor="rgba(31,119,180,0.15)", line={"width": 0},
                                     hoverinfo="skip", name="mean ± std"))
        fig.add_trace(go.Scatter(x=p, y=mean, mode="lines+markers", name=f"{rec['model']} mean", line={"color": COLOURS[0]}))
        for i, (seed, one) in enumerate(rows.groupby("seed", sort=True)):
            one = one.sort_values("dropout")
            fig.add_trace(go.Scatter(x=one["dropout"], y=one["val_loss"], mode="markers", name=f"seed {seed}",
                                     marker={"color": COLOURS[(i + 1) % len(COLOURS)], "size": 6, "opacity": 0.7}))
        fig.add_trace(go.Scatter(x=[rec["best_p"]], y=[rec["best_val_loss"]], mode="markers", name="optimum",
                                 marker={"symbol": "star", "size": 16, "color": "black"}))
        fig.add_vrect(x0=rec["plateau_low"], x1=rec["plateau_high"] if rec["plateau_high"] > rec["plateau_low"]
                      else rec["plateau_low"] + 1e-3, fillcolor="orange", opacity=0.15, line_width=0,
                      annotation_text=f"plateau (within {rec['plateau_delta']:g})", annotation_position="top left")
        fig.update_layout(title=f"{rec['model']} ({rec['model_shape']}), {rec['cap']:,} tokens: {rec['verdict']}",
                          xaxis_title="dropout p", yaxis_title="validation loss")
        figures.append(fig)
    return figures


def stream_figures(summary: pd.DataFrame, comparison: list[dict]) -> list[go.Figure]:
    figures = []
    for model, rows in summary.groupby("model", sort=True):
        fig = go.Figure()
        for i, (arm, one) in enumerate(rows.groupby("arm", sort=True)):
            one = one.sort_values("cap")
            fig.add_trace(go.Scatter(x=[f"{c:,}" for c in one["cap"]], y=one["val_loss_mean"], mode="lines+markers",
                                     name=arm, error_y={"type": "data", "array": one["val_loss_std"].fillna(0)},
                                     line={"dash": "solid" if arm.startswith("static") else "dash",
                                           "color": COLOURS[i % len(COLOURS)]}))
        fig.update_layout(title=f"{model}: validation loss at the end of each stream stage (mean ± std over seeds)",
                          xaxis_title="token cap of the stage", yaxis_title="validation loss")
        figures.append(fig)
    best = pd.DataFrame([r for r in comparison if r["best_static"]])
    for model, rows in (best.groupby("model", sort=True) if len(best) else []):
        fig = go.Figure()
        for i, (arm, one) in enumerate(rows.groupby("decay_arm", sort=True)):
            one = one.sort_values("cap")
            fig.add_trace(go.Scatter(
                x=[f"{c:,}" for c in one["cap"]], y=one["mean_diff"], mode="markers+lines", name=arm,
                error_y={"type": "data", "symmetric": False, "array": (one["ci_high"] - one["mean_diff"]).fillna(0),
                         "arrayminus": (one["mean_diff"] - one["ci_low"]).fillna(0)},
                text=[f"vs {s}; wins {w}/{n}; {v}" for s, w, n, v in zip(one["static_arm"], one["wins"], one["n"], one["verdict"])],
                marker={"color": COLOURS[(i + 4) % len(COLOURS)], "size": 9}))
        fig.add_hline(y=0, line_dash="dot", line_color="black")
        fig.update_layout(title=f"{model}: decay − best static rate, paired by seed (95% t-interval; below 0: decay better)",
                          xaxis_title="token cap of the stage", yaxis_title="Δ validation loss")
        figures.append(fig)
    return figures


def comparison_table(comparison: list[dict]) -> str:
    rows = [r for r in comparison if r["best_static"]]
    if not rows:
        return ""
    frame = pd.DataFrame(rows)[["model", "stage", "cap", "decay_arm", "static_arm", "n", "mean_diff", "ci_low",
                                "ci_high", "wins", "verdict", "caution"]]
    return "<h2>Decay arms against the best static rate of each stage</h2>" + frame.to_html(
        index=False, float_format=lambda x: f"{x:.4f}", na_rep="–", border=0)


def write_report(path: Path, config: dict, figures: list[go.Figure], table: str = "") -> Path:
    """One self-contained HTML file; returns its path. PNGs beside it when kaleido is present."""
    compliance = config["compliance"]
    head = (f"<h1>{html.escape(config['stage'])} run</h1><p>{html.escape(compliance['note'])} · "
            f"mps_compliant: {str(compliance['mps_compliant']).lower()} · grid {config['grid_size']} points · "
            f"dropout-decay {html.escape(config['code_version'])}</p><p><small>{html.escape(config['attribution'])}</small></p>")
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"figure-{i}", default_width="100%")
             for i, fig in enumerate(figures)]
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>dropout-decay report</title>"
            "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} "
            "td,th{padding:2px 8px;text-align:right}</style></head><body>\n"
            + head + "\n" + table + "\n" + "\n".join(parts) + "\n</body></html>\n")
    write_text(path, page)
    if importlib.util.find_spec("kaleido") is not None:
        for i, fig in enumerate(figures):
            try:
                fig.write_image(path.with_name(f"report-{i}.png"))
            except Exception:  # kaleido present but unusable (e.g. no browser): the HTML is the report
                break
    return path
