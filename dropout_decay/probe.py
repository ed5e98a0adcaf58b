"""The probe's answer: the best static rate at each data size, with its uncertainty, and the law.

For each model and cap (a nested token limit, trained for a fixed number of passes):

* `best_p`: the swept rate with the lowest mean validation loss;
* `p_star`: a refined optimum, the vertex of a quadratic fitted to the mean curve around the
  best rate (up to two neighbours on each side), in p or in √p, whichever leaves the smaller
  residual (with only three points both fit exactly and p is used); at an edge of the sweep
  the edge itself, flagged;
* `p_star_low/high`: a 95% percentile bootstrap over seeds (the same resampled seeds at every
  cap); with 3 seeds only 10 distinct resamples exist, so the interval is coarse;
* the plateau: rates whose mean is within one standard error of a difference of the best.

The law p*(D) (law.py) is fitted to the per-cap optima with D in tokens per parameter. Caps
whose optimum is the largest rate swept are left out (the true optimum lies above it); when no
cap has an interior optimum, or fewer than three caps remain, there is no law, and it says why.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .law import fit_form, fit_law, predict

BOOTSTRAP = 1000
LEVEL = 0.95


def refine(rates: np.ndarray, means: np.ndarray) -> dict:
    """The vertex of a local quadratic around the best rate, in p or √p."""
    best = int(np.argmin(means))
    edge = best in (0, len(rates) - 1)
    if edge or len(rates) < 3:
        return {"p_star": float(rates[best]), "scale": None, "edge": bool(edge), "residuals": [], "points": []}
    lo, hi = max(best - 2, 0), min(best + 3, len(rates))
    p, v = rates[lo:hi], means[lo:hi]
    fits = []
    for scale, x in (("p", p), ("sqrt_p", np.sqrt(p))):
        a, b, c = np.polyfit(x, v, 2)
        residuals = v - np.polyval([a, b, c], x)
        vertex = -b / (2 * a) if a > 0 else None
        if vertex is not None:
            vertex = min(max(vertex, x[0]), x[-1])
            vertex = vertex**2 if scale == "sqrt_p" else vertex
        fits.append((float(np.sum(residuals**2)), scale, vertex, residuals))
    sse, scale, vertex, residuals = min(fits, key=lambda f: (round(f[0], 15), f[1] != "p"))
    return {"p_star": float(vertex if vertex is not None else rates[best]), "scale": scale, "edge": False,
            "residuals": [float(r) for r in residuals], "points": [float(x) for x in p]}


def _curve(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """`table`: rows = seeds, columns = rates; the mean curve over rows."""
    return table.columns.to_numpy(float), table.mean(axis=0).to_numpy(float)


def analyse_cap(table: pd.DataFrame, resamples: np.ndarray) -> dict:
    """One model at one cap. `table`: val loss, rows = seeds, columns = rates (sorted)."""
    rates, means = _curve(table)
    n = table.shape[0]
    best = int(np.argmin(means))
    refined = refine(rates, means)
    std = table.std(axis=0, ddof=1).to_numpy(float) if n > 1 else np.full(len(rates), np.nan)
    pooled = float(math.sqrt(np.nanmean(std**2))) if n > 1 else None
    noise = pooled * math.sqrt(2 / n) if pooled is not None else None
    boot = [refine(rates, table.iloc[idx].mean(axis=0).to_numpy(float))["p_star"] for idx in resamples] if n > 1 else []
    low, high = (float(np.quantile(boot, (1 - LEVEL) / 2)), float(np.quantile(boot, (1 + LEVEL) / 2))) if boot else (None, None)
    return {"best_p": float(rates[best]), "best_val_loss": float(means[best]), "p_star": refined["p_star"],
            "p_star_low": low, "p_star_high": high, "edge": refined["edge"],
            "at_top": best == len(rates) - 1, "interior": 0 < best < len(rates) - 1, "scale": refined["scale"],
            "quadratic": refined, "seed_std": pooled,
            "plateau": [float(p) for p, m in zip(rates, means) if noise is not None and m <= means[best] + noise],
            "curve": {"rates": rates.tolist(), "mean_val_loss": means.tolist(),
                      "std_val_loss": [None if math.isnan(s) else float(s) for s in std]},
            "bootstrap": boot, "n_seeds": n}


def analyse_probe(metrics: pd.DataFrame, config: dict) -> dict:
    params = {m["label"]: m["parameters"] for m in config["models"]}
    seeds = sorted(metrics["seed"].unique())
    rng = np.random.default_rng(0)
    resamples = rng.integers(0, len(seeds), size=(BOOTSTRAP, len(seeds)))
    caps = []
    for (model, cap), rows in metrics.groupby(["model", "cap"], sort=True):
        table = rows.pivot_table(index="seed", columns="dropout", values="val_loss", aggfunc="first").sort_index(axis=1)
        table = table.reindex(seeds).dropna()
        zero = rows[rows["dropout"] == 0.0]["gap"]
        caps.append({"model": model, "cap": int(cap), "parameters": params[model],
                     "tokens_per_param": cap / params[model], "gap_at_p0": float(zero.mean()) if len(zero) else None,
                     **analyse_cap(table, resamples if len(table) == len(seeds) else resamples[:, :0])})
    rates = sorted(metrics["dropout"].unique())
    return {"caps": caps, "law": law_of(caps, (float(rates[0]), float(rates[-1]))),
            "difficulty": config["data"]["manifest"].get("difficulty"),
            "passes": config["settings"].get("passes")}


def law_of(caps: list[dict], p_range: tuple[float, float]) -> dict:
    """The fitted p*(D) with bootstrap intervals, or the plain reason there is none."""
    used = [c for c in caps if not c["at_top"]]
    excluded = [{"model": c["model"], "cap": c["cap"], "why": "optimum at the largest rate swept"}
                for c in caps if c["at_top"]]
    if not any(c["interior"] for c in caps):
        return {"form": None, "excluded": excluded,
                "reason": "no cap has an interior optimum: the probe cannot say how the best rate moves with data"}
    if len(used) < 3:
        return {"form": None, "excluded": excluded,
                "reason": f"only {len(used)} cap(s) with a usable optimum; a two-parameter law needs at least 3"}
    d = np.array([c["tokens_per_param"] for c in used])
    p = np.array([c["p_star"] for c in used])
    law = fit_law(d.tolist(), p.tolist(), p_range)
    boots = [c["bootstrap"] for c in used]
    if all(len(b) for b in boots):
        draws = []
        for sample in zip(*boots):
            fitted = fit_form(law["form"], d, np.asarray(sample, float))
            draws.append([fitted["params"]["a"], fitted["params"]["b"], *(predict(fitted, x) for x in d)])
        draws = np.asarray(draws)
        q = lambda col: [float(np.quantile(draws[:, col], (1 - LEVEL) / 2)), float(np.quantile(draws[:, col], (1 + LEVEL) / 2))]
        law["interval"] = {"a": q(0), "b": q(1), "p_star_at_caps": [q(2 + i) for i in range(len(d))], "level": LEVEL,
                           "method": "bootstrap over seeds, the chosen form refitted to each resample"}
    law["points"] = [{"model": c["model"], "cap": c["cap"], "tokens_per_param": c["tokens_per_param"],
                      "p_star": c["p_star"]} for c in used]
    law["excluded"] = excluded
    law["falls_with_data"] = law["params"]["b"] > 0
    return law
