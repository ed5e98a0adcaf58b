"""Model selection for static sweeps: does this model's val-loss curve in p have a real dip?

A model is a candidate when its best rate is interior (neither the smallest nor the largest
rate swept), nonzero, and the dip is deeper than seed noise: the smaller of the two rises from
the optimum to the curve's ends exceeds the pooled seed standard deviation. With one seed the
noise is unknown and said so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def quadratic_fit(rates: np.ndarray, means: np.ndarray, best: int) -> dict:
    """Parabola through the optimum and its two neighbours (the three end points at an edge)."""
    lo = min(max(best - 1, 0), max(len(rates) - 3, 0))
    p, v = rates[lo : lo + 3], means[lo : lo + 3]
    if len(p) < 3:
        return {"a": None, "b": None, "c": None, "vertex_p": None, "points": p.tolist()}
    a, b, c = np.polyfit(p, v, 2)
    vertex = float(-b / (2 * a)) if a > 0 else None
    return {"a": float(a), "b": float(b), "c": float(c), "vertex_p": vertex, "points": p.tolist()}


def select_curve(per_seed: pd.DataFrame, delta: float) -> dict:
    """`per_seed`: columns dropout, seed, val_loss for one model and token limit."""
    g = per_seed.groupby("dropout")["val_loss"]
    curve = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1)}).sort_index()
    rates, means = curve.index.to_numpy(float), curve["mean"].to_numpy(float)
    best = int(np.argmin(means))
    best_p, best_val = float(rates[best]), float(means[best])
    rise_low, rise_high = float(means[0] - best_val), float(means[-1] - best_val)
    dip = min(rise_low, rise_high)
    n_seeds = int(per_seed["seed"].nunique())
    variances = curve["std"].dropna() ** 2
    seed_std = float(math.sqrt(variances.mean())) if n_seeds > 1 and len(variances) else None
    deeper = (dip > seed_std) if seed_std is not None else None
    interior = 0 < best < len(rates) - 1
    nonzero = best_p > 0
    candidate = bool(interior and nonzero and deeper is not False)
    if not nonzero:
        verdict = "optimum at p=0: dropout does not help here"
    elif best == len(rates) - 1:
        verdict = f"optimum at the largest rate swept ({best_p:g}): extend the grid upwards"
    elif not interior:
        verdict = f"optimum at the smallest rate swept ({best_p:g}): extend the grid downwards"
    elif deeper is False:
        verdict = f"dip at p={best_p:g} is within seed noise ({dip:.4f} <= std {seed_std:.4f})"
    elif deeper is None:
        verdict = f"interior nonzero optimum at p={best_p:g} (dip {dip:.4f}; seed noise unknown with 1 seed)"
    else:
        verdict = f"interior nonzero optimum at p={best_p:g} (dip {dip:.4f} = {dip / seed_std:.1f} seed std)"
    plateau = [float(p) for p, m in zip(rates, means) if m <= best_val + delta]
    return {
        "rates": rates.tolist(), "mean_val_loss": means.tolist(),
        "std_val_loss": [None if math.isnan(x) else float(x) for x in curve["std"]],
        "n_seeds": n_seeds, "best_p": best_p, "best_val_loss": best_val,
        "interior": bool(interior), "nonzero": bool(nonzero),
        "plateau": plateau, "plateau_low": min(plateau), "plateau_high": max(plateau), "plateau_delta": delta,
        "rise_to_lowest_rate": rise_low, "rise_to_highest_rate": rise_high, "dip_depth": dip,
        "seed_std": seed_std, "dip_over_std": (dip / seed_std) if seed_std else None,
        "deeper_than_noise": deeper, "quadratic_fit": quadratic_fit(rates, means, best),
        "candidate": candidate, "verdict": verdict,
    }


def select_models(metrics: pd.DataFrame, delta: float) -> list[dict]:
    """One selection record per model and token limit of a screen or confirm run."""
    out = []
    for (model, cap), group in metrics.groupby(["model", "cap"], sort=True):
        rec = {"model": model, "model_shape": group["model_shape"].iloc[0], "cap": int(cap)}
        out.append(rec | select_curve(group[["dropout", "seed", "val_loss"]], delta))
    return out
