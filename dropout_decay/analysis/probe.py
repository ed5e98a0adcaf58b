"""The probe's answer: the best static rate at each data size, with its uncertainty, and the law.

For each model and cap (a nested token limit, trained for a fixed number of passes):

* `best_p`: the swept rate with the lowest mean validation loss;
* `p_star`: a refined optimum, the vertex of a quadratic fitted to the mean curve around the
  best rate (up to two neighbours on each side), in p or in √p, whichever leaves the smaller
  residual (with only three points both fit exactly and p is used); at an edge of the sweep
  the edge itself, flagged;
* `p_star_low/high`: a 95% percentile bootstrap over seeds (the same resampled seeds at every
  cap), computed exactly over every distinct resample with its multinomial weight when there
  are few (3 seeds: 10), so the interval is coarse but not noisy;
* the plateau: rates whose mean is within one standard error of a difference of the best.

The law p*(D) (law.py) is fitted to the per-cap optima with D in tokens per parameter. Caps
whose optimum is the largest rate swept are left out (the true optimum lies above it); when no
cap has an interior optimum, or fewer than three caps remain, there is no law, and it says why.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pandas as pd

from ..model import fit_form, fit_law, predict

BOOTSTRAP = 1000  # random resamples when the distinct ones are more than this
LEVEL = 0.95


def resamples(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap resamples of n seeds as index rows, with their probabilities: every distinct
    multiset with its multinomial weight when there are at most BOOTSTRAP, else random draws."""
    if math.comb(2 * n - 1, n) <= BOOTSTRAP:
        rows = list(itertools.combinations_with_replacement(range(n), n))
        weights = [math.factorial(n) / math.prod(math.factorial(c) for c in Counter(r).values()) / n**n for r in rows]
        return np.asarray(rows), np.asarray(weights)
    rows = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP, n))
    return rows, np.full(BOOTSTRAP, 1 / BOOTSTRAP)


def weighted_quantiles(values, weights, levels) -> list[float]:
    """Quantiles of a discrete distribution (the smallest value whose cumulative weight reaches the level)."""
    order = np.argsort(values, kind="stable")
    v, cum = np.asarray(values, float)[order], np.cumsum(np.asarray(weights, float)[order])
    return [float(v[min(np.searchsorted(cum, q - 1e-12), v.size - 1)]) for q in levels]


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


def analyse_cap(table: pd.DataFrame, rows: np.ndarray, weights: np.ndarray) -> dict:
    """One model at one cap. `table`: val loss, rows = seeds, columns = rates (sorted);
    `rows`, `weights`: the bootstrap resamples of its seeds."""
    rates, means = _curve(table)
    n = table.shape[0]
    best = int(np.argmin(means))
    refined = refine(rates, means)
    std = table.std(axis=0, ddof=1).to_numpy(float) if n > 1 else np.full(len(rates), np.nan)
    pooled = float(math.sqrt(np.nanmean(std**2))) if n > 1 else None
    noise = pooled * math.sqrt(2 / n) if pooled is not None else None
    boot = [refine(rates, table.iloc[idx].mean(axis=0).to_numpy(float))["p_star"] for idx in rows] if n > 1 else []
    low, high = weighted_quantiles(boot, weights, ((1 - LEVEL) / 2, (1 + LEVEL) / 2)) if boot else (None, None)
    return {"best_p": float(rates[best]), "best_val_loss": float(means[best]), "p_star": refined["p_star"],
            "p_star_low": low, "p_star_high": high, "edge": refined["edge"],
            "at_top": best == len(rates) - 1, "interior": 0 < best < len(rates) - 1, "scale": refined["scale"],
            "quadratic": refined, "seed_std": pooled,
            "plateau": [float(p) for p, m in zip(rates, means) if noise is not None and m <= means[best] + noise],
            "curve": {"rates": rates.tolist(), "mean_val_loss": means.tolist(),
                      "std_val_loss": [None if math.isnan(s) else float(s) for s in std]},
            "bootstrap": boot, "n_seeds": n, "bootstrap_method": bootstrap_method(n, len(rows))}


def bootstrap_method(n: int, resampled: int) -> str:
    """Says how the interval was made, so a reader sees how little three seeds can say."""
    if n < 2:
        return "none: one replicate"
    if resampled < BOOTSTRAP:
        return (f"exact: all {resampled} distinct resamples of {n} replicates, each with its multinomial weight; "
                f"with so few replicates a percentile interval is too narrow, read it as a lower bound on the uncertainty")
    return f"{resampled} random resamples of {n} replicates"


def analyse_probe(metrics: pd.DataFrame, config: dict) -> dict:
    params = {m["label"]: m["parameters"] for m in config["models"]}
    seeds = sorted(metrics["seed"].unique())
    rows, weights = resamples(len(seeds))
    caps = []
    for (model, cap), at in metrics.groupby(["model", "cap"], sort=True):
        table = at.pivot_table(index="seed", columns="dropout", values="val_loss", aggfunc="first").sort_index(axis=1)
        table = table.reindex(seeds).dropna()
        zero = at[at["dropout"] == 0.0]["gap"]
        caps.append({"model": model, "cap": int(cap), "parameters": params[model],
                     "tokens_per_param": cap / params[model], "gap_at_p0": float(zero.mean()) if len(zero) else None,
                     **analyse_cap(table, *(resamples(len(table)) if len(table) != len(seeds) else (rows, weights)))})
    rates = sorted(metrics["dropout"].unique())
    return {"caps": caps, "law": law_of(caps, (float(rates[0]), float(rates[-1])), weights),
            "difficulty": config["data"]["manifest"].get("difficulty"),
            "passes": config["settings"].get("passes")}


def law_of(caps: list[dict], p_range: tuple[float, float], weights: np.ndarray | None = None) -> dict:
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
    if all(len(b) == len(weights) for b in boots) and weights is not None:
        draws = []
        for sample in zip(*boots):
            fitted = fit_form(law["form"], d, np.asarray(sample, float))
            draws.append([fitted["params"]["a"], fitted["params"]["b"], *(predict(fitted, x) for x in d)])
        draws = np.asarray(draws)

        def q(col: int) -> list[float]:
            return weighted_quantiles(draws[:, col], weights, ((1 - LEVEL) / 2, (1 + LEVEL) / 2))

        law["interval"] = {"a": q(0), "b": q(1), "p_star_at_caps": [q(2 + i) for i in range(len(d))], "level": LEVEL,
                           "method": "bootstrap over seeds, the chosen form refitted to each resample"}
    law["points"] = [{"model": c["model"], "cap": c["cap"], "tokens_per_param": c["tokens_per_param"],
                      "p_star": c["p_star"]} for c in used]
    law["excluded"] = excluded
    law["falls_with_data"] = law["params"]["b"] > 0
    return law
