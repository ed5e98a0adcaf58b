"""A backtest's files (cli/backtest.py): the rows, the law it fitted, and predicted against
observed p* as one plot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from ..common import write_text
from .artefacts import _csv, _json
from .page import ensure_plotly, figure_divs, page


def write_backtest(out: Path, law: dict, rows: list[dict], read: list[dict], summary: dict) -> None:
    """backtest.csv, backtest.json, pressure_law.json and backtest.html into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "backtest.csv", _csv(pd.DataFrame(rows)))
    write_text(out / "backtest.json", _json({"law": law, "summary": summary, "studies": read}))
    write_text(out / "pressure_law.json", _json(law))
    fig = go.Figure()
    frame = pd.DataFrame(rows)
    for study, at in frame.groupby("study", sort=True):
        fig.add_trace(go.Scatter(x=at["observed_p_star"], y=at["predicted_p_star"], mode="markers", name=study,
                                 text=[f"U={u:,}, passes={k:g}, regret {r:.4f}" for u, k, r in
                                       zip(at["unique_tokens"], at["passes"], at["regret"])]))
    top = max(frame["observed_p_star"].max(), frame["predicted_p_star"].max(), 0.05)
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="predicted = observed", line={"dash": "dot"}))
    fig.update_layout(title=f"backtest: {law['formula']} (fitted on other studies) against each cell's observed p*",
                      xaxis_title="observed p* (validation)", yaxis_title="predicted p*")
    src = ensure_plotly(out).name
    write_text(out / "backtest.html", page("dropout-decay backtest", figure_divs([fig], "backtest"), src))
