"""The plotly figures of the reports, one function per kind of question (report.py lays them out)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..common import COLOURS
from ..model import is_twin, static_rate



def model_name(label: str, shape: str) -> str:
    """A model's label, with its shape when the label is an alias (winner=2x4x96)."""
    return label if label == shape else f"{label} ({shape})"


def _colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def _dash(arm) -> str:
    if isinstance(arm, str) and is_twin(arm):
        return "dot"
    return "solid" if not isinstance(arm, str) or static_rate(arm) is not None else "dash"


def static_figures(metrics: pd.DataFrame, selection: list[dict]) -> list[go.Figure]:
    """Validation loss against p, per model and token limit: mean ± std, seeds, optimum, plateau."""
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
                                     marker={"color": _colour(i + 1), "size": 6, "opacity": 0.7}))
        fig.add_trace(go.Scatter(x=[rec["best_p"]], y=[rec["best_val_loss"]], mode="markers", name="optimum",
                                 marker={"symbol": "star", "size": 16, "color": "black"}))
        fig.add_vrect(x0=rec["plateau_low"], x1=rec["plateau_high"] if rec["plateau_high"] > rec["plateau_low"]
                      else rec["plateau_low"] + 1e-3, fillcolor="orange", opacity=0.15, line_width=0,
                      annotation_text=f"plateau (within {rec['plateau_delta']:g})", annotation_position="top left")
        fig.update_layout(title=f"{model_name(rec['model'], rec['model_shape'])}, {rec['cap']:,} tokens: {rec['verdict']}",
                          xaxis_title="dropout p", yaxis_title="validation loss (nats)")
        figures.append(fig)
    return figures


def learning_figures(trace: list[dict], key: str, stream: bool) -> list[go.Figure]:
    """Per model (and token limit): val and train loss against tokens for every arm (mean over
    seeds, each seed faint), the val − train gap, and in a stream the dropout rate in force."""
    rows = pd.DataFrame([r for r in trace if r.get("state") == "COMPLETE"])
    if rows.empty:
        return []
    evals = rows[rows["kind"] == "eval"]
    figures = []
    groups = ["model"] if stream else ["model", "tokens_limit"]
    if not stream:
        caps = rows[rows["kind"] == "eval"].groupby("trial")["cap"].max()
        evals = evals.assign(tokens_limit=evals["trial"].map(caps))
        rows = rows.assign(tokens_limit=rows["trial"].map(caps))
    for where, ev in evals.groupby(groups, sort=True):
        where = where if isinstance(where, tuple) else (where,)
        label = where[0] + ("" if stream else f", {int(where[1]):,} training tokens")
        loss, gap = go.Figure(), go.Figure()
        for i, (arm, one) in enumerate(ev.groupby(key, sort=True)):
            name = arm if stream else f"p={arm:g}"
            mean = one.groupby("tokens", sort=True)[["val_loss", "train_loss", "gap"]].mean()
            for seed, s in one.groupby("seed", sort=True):
                loss.add_trace(go.Scatter(x=s["tokens"], y=s["val_loss"], mode="lines", opacity=0.25, showlegend=False,
                                          line={"color": _colour(i), "width": 1, "dash": _dash(arm)},
                                          name=f"{name} seed {seed}", legendgroup=name))
            loss.add_trace(go.Scatter(x=mean.index, y=mean["val_loss"], mode="lines+markers", name=f"{name} val",
                                      line={"color": _colour(i), "width": 2.5, "dash": _dash(arm)}, legendgroup=name))
            loss.add_trace(go.Scatter(x=mean.index, y=mean["train_loss"], mode="lines", name=f"{name} train",
                                      line={"color": _colour(i), "width": 1.5, "dash": "dot"}, legendgroup=name))
            gap.add_trace(go.Scatter(x=mean.index, y=mean["gap"], mode="lines+markers", name=name,
                                     line={"color": _colour(i), "dash": _dash(arm)}))
        loss.update_layout(title=f"{label}: validation (thick; each seed faint) and train loss (dotted), dropout off, "
                           "against tokens seen", xaxis_title="tokens seen", yaxis_title="loss (nats)")
        gap.update_layout(title=f"{label}: val − train gap against tokens seen (mean over seeds)",
                          xaxis_title="tokens seen", yaxis_title="val loss − train loss (nats)")
        figures += [loss, gap]
    if stream:
        figures += _dropout_figures(rows[rows["kind"] == "train"])
    return figures


def _dropout_figures(train_rows: pd.DataFrame) -> list[go.Figure]:
    figures = []
    for model, rows in train_rows.groupby("model", sort=True):
        fig = go.Figure()
        first_seed = rows[rows["seed"] == rows["seed"].min()]
        for i, (arm, one) in enumerate(first_seed.groupby("arm", sort=True)):
            fig.add_trace(go.Scatter(x=one["tokens"], y=one["dropout_in_force"], mode="lines", name=arm,
                                     line={"color": _colour(i), "dash": _dash(arm), "shape": "hv"}))
        fig.update_layout(title=f"{model}: dropout rate in force against tokens seen, per schedule",
                          xaxis_title="tokens seen", yaxis_title="dropout p")
        figures.append(fig)
    return figures


def stream_figures(summary: pd.DataFrame, comparison: list[dict]) -> list[go.Figure]:
    """Val loss at each segment's end per arm, and each decay's paired difference per cap."""
    figures = []
    metric = "test_loss" if summary["test_loss_mean"].notna().all() else "val_loss"
    name = metric.replace("_", " ")
    for model, rows in summary.groupby("model", sort=True):
        fig = go.Figure()
        growing = rows[~rows["arm"].map(is_twin)]
        caps = dict(zip(growing["segment"], growing["cap"]))  # a fixed-pool twin is drawn at its segment's growing cap
        for i, (arm, one) in enumerate(rows.groupby("arm", sort=True)):
            one = one.sort_values("segment")
            fig.add_trace(go.Scatter(x=[f"{caps.get(k, c):,}" for k, c in zip(one["segment"], one["cap"])],
                                     y=one[f"{metric}_mean"], mode="lines+markers", name=arm,
                                     error_y={"type": "data", "array": one[f"{metric}_std"].fillna(0)},
                                     line={"dash": _dash(arm), "color": _colour(i)}))
        fig.update_layout(title=f"{model}: {name} at the end of each stream segment (mean ± std over replicates)",
                          xaxis_title="token cap of the segment (growing stream)", yaxis_title=f"{name} (nats)")
        figures.append(fig)
    best = pd.DataFrame([r for r in comparison if r["best_static"] and r.get("pool", "growing") == "growing"])
    for model, rows in (best.groupby("model", sort=True) if len(best) else []):
        fig = go.Figure()
        for i, (arm, one) in enumerate(rows.groupby("decay_arm", sort=True)):
            one = one.sort_values("cap")
            fig.add_trace(go.Scatter(
                x=[f"{c:,}" for c in one["cap"]], y=one["mean_diff"], mode="markers+lines", name=arm,
                error_y={"type": "data", "symmetric": False, "array": (one["ci_high"] - one["mean_diff"]).fillna(0),
                         "arrayminus": (one["mean_diff"] - one["ci_low"]).fillna(0)},
                text=[f"vs {s}; wins {w}/{n}; {v}" for s, w, n, v in zip(one["static_arm"], one["wins"], one["n"], one["verdict"])],
                marker={"color": _colour(i + 4), "size": 9}))
        fig.add_hline(y=0, line_dash="dot", line_color="black")
        fig.update_layout(title=f"{model}: decay − best static rate, paired by replicate (95% t-interval; below 0: decay better)",
                          xaxis_title="token cap of the segment", yaxis_title=f"Δ {name} (nats)")
        figures.append(fig)
    return figures


def probe_figures(metrics: pd.DataFrame, probe: dict) -> list[go.Figure]:
    """Val loss against p at each cap (mean and seeds, optimum with its interval), and the law."""
    figures = []
    for model, caps in pd.DataFrame(probe["caps"]).groupby("model", sort=True):
        fig = go.Figure()
        for i, rec in enumerate(caps.sort_values("cap").to_dict("records")):
            colour = _colour(i)
            rows = metrics[(metrics["model"] == model) & (metrics["cap"] == rec["cap"])]
            fig.add_trace(go.Scatter(x=rows["dropout"], y=rows["val_loss"], mode="markers", showlegend=False,
                                     marker={"color": colour, "size": 5, "opacity": 0.4}, legendgroup=str(rec["cap"])))
            fig.add_trace(go.Scatter(x=rec["curve"]["rates"], y=rec["curve"]["mean_val_loss"], mode="lines+markers",
                                     name=f"{rec['cap']:,} tokens (D={rec['tokens_per_param']:.3g})",
                                     line={"color": colour}, legendgroup=str(rec["cap"])))
            low, high = rec["p_star_low"], rec["p_star_high"]
            fig.add_trace(go.Scatter(x=[rec["p_star"]], y=[rec["best_val_loss"]], mode="markers", showlegend=False,
                                     error_x={"type": "data", "symmetric": False, "array": [high - rec["p_star"]],
                                              "arrayminus": [rec["p_star"] - low]} if low is not None else None,
                                     marker={"symbol": "star", "size": 14, "color": colour}, legendgroup=str(rec["cap"])))
        fig.update_layout(title=f"{model}: validation loss against p at each cap (star: refined optimum, "
                          "bar: bootstrap 95% interval over seeds)", xaxis_title="dropout p", yaxis_title="validation loss (nats)")
        figures.append(fig)
    law = probe.get("law") or {}
    points = pd.DataFrame(probe["caps"])
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=points["tokens_per_param"], y=points["p_star"], mode="markers", name="per-cap optimum",
        error_y={"type": "data", "symmetric": False, "array": (points["p_star_high"] - points["p_star"]).fillna(0),
                 "arrayminus": (points["p_star"] - points["p_star_low"]).fillna(0)},
        marker={"size": 10, "color": "black"}))
    for i, cand in enumerate(law.get("candidates", [])):
        fig.add_trace(go.Scatter(x=points["tokens_per_param"], y=cand["fitted"], mode="lines",
                                 name=f"{cand['form']} (LOO MSE {cand['loo_mse']:.2g})" + (" — chosen" if cand["form"] == law["form"] else ""),
                                 line={"color": _colour(i + 1), "width": 3 if cand["form"] == law["form"] else 1.5}))
    title = f"p*(D): {law['form']} law" if law.get("form") else f"p*(D): no law ({law.get('reason', 'not enough data')})"
    fig.update_layout(title=title, xaxis_title="D = tokens per parameter", yaxis_title="best static p", xaxis_type="log")
    figures.append(fig)
    return figures
