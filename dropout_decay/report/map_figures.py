"""A map's heatmaps: p* and the gain of p* over p = 0 across (unique tokens, passes), both axes
logarithmic (each cell at log10 of its value, ticks labelled with the values themselves)."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go


def _short(n: float) -> str:
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k" if n >= 1e3 else f"{n:g}"


def _interval(low, high) -> str:
    return "" if low is None or (isinstance(low, float) and math.isnan(low)) else f"<br>[{low:.2g}, {high:.2g}]"


def _heatmap(cells: pd.DataFrame, value: str, text, title: str, colorbar: str, scale: str, mid=None) -> go.Figure:
    us, passes = sorted(cells["unique_tokens"].unique()), sorted(cells["passes"].unique())
    grid = cells.pivot_table(index="passes", columns="unique_tokens", values=value, aggfunc="first")
    grid = grid.reindex(index=passes, columns=us)
    words = cells.assign(label=text).pivot_table(index="passes", columns="unique_tokens", values="label",
                                                  aggfunc="first").reindex(index=passes, columns=us)
    fig = go.Figure(go.Heatmap(
        x=[math.log10(u) for u in us], y=[math.log10(k) for k in passes], z=grid.to_numpy(),
        text=words.fillna("").to_numpy(), texttemplate="%{text}", colorscale=scale, zmid=mid,
        colorbar={"title": colorbar}, hovertemplate="U=%{customdata[0]}, passes=%{customdata[1]}: %{z:.3f}<extra></extra>",
        customdata=[[[_short(u), f"{k:g}"] for u in us] for k in passes]))
    fig.update_layout(title=title, xaxis={"title": "unique tokens U (log scale)", "tickvals": [math.log10(u) for u in us],
                                          "ticktext": [_short(u) for u in us]},
                      yaxis={"title": "passes over U (log scale)", "tickvals": [math.log10(k) for k in passes],
                             "ticktext": [f"{k:g}" for k in passes]})
    return fig


def map_figures(cells: list[dict]) -> list[go.Figure]:
    """Per model: where dropout helps (p* and its interval) and by how much (gain, nats)."""
    figures = []
    for model, at in pd.DataFrame(cells).groupby("model", sort=True):
        p_text = [f"{r.p_star:g}{_interval(r.p_star_low, r.p_star_high)}" for r in at.itertuples()]
        g_text = [f"{r.gain:+.3f}{_interval(r.gain_low, r.gain_high)}" if r.gain is not None else "" for r in at.itertuples()]
        figures.append(_heatmap(at, "p_star", p_text, f"{model}: best static rate p* per cell "
                                "(lowest mean validation loss over seeds; bootstrap 95% interval)", "p*", "Blues"))
        figures.append(_heatmap(at, "gain", g_text, f"{model}: val loss at p* − at p = 0 (nats; below 0: dropout helps; "
                                "bootstrap 95% interval)", "gain (nats)", "RdBu", mid=0.0))
    return figures
