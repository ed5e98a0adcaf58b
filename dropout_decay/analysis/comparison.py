"""Does a decay arm beat a static rate? Paired by seed, at every stream segment (token cap).

Every arm of a seed starts from the same initialisation and sees the same batches, so the
per-seed difference Δ = val(decay) − val(other) removes most seed-to-seed noise; negative
means the decay arm is better. Per pair and cap: the mean Δ, a two-sided 95% Student-t
interval, the one-sided p-value of "decay is better" (paired t-test), the wins and the
probability of improvement (the share of seeds where the decay arm wins).

Claims, at the strength the data allows:
* "beats static s at cap c" — Holm-adjusted across the caps of that pair, below `ALPHA`;
* "beats every static rate at cap c" — an intersection-union test: every pair must hold, so
  its p-value is the largest of the pairs' (no correction across statics is needed), then
  Holm across caps.
With 3 seeds the interval's half-width is 2.48 standard deviations of Δ, and a one-sided
p below 0.05 needs t > 2.92: only a consistent effect passes. With one seed nothing does.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95
ALPHA = 0.05


def paired(diffs: list[float]) -> dict:
    n = len(diffs)
    mean = float(np.mean(diffs)) if n else math.nan
    std = float(np.std(diffs, ddof=1)) if n > 1 else math.nan
    if n > 1 and std > 0:
        half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n)
        low, high = mean - half, mean + half
        p_better = float(stats.t.cdf(mean / (std / math.sqrt(n)), n - 1))
    elif n > 1:  # every seed moved by exactly the same amount
        low = high = mean
        p_better = 0.0 if mean < 0 else 1.0
    else:
        low = high = p_better = math.nan
    if n < 2:
        verdict, caution = "no interval (one seed)", "one seed: no interval can be given"
    else:
        verdict = "decay better" if high < 0 else "static better" if low > 0 else "no clear difference"
        caution = f"n={n}: the t-interval is wide; treat it as indicative" if n < 5 else ""
    wins = int(sum(d < 0 for d in diffs))
    return {"n": n, "mean_diff": mean, "std_diff": std, "ci_low": low, "ci_high": high, "p_better": p_better,
            "wins": wins, "prob_improvement": wins / n if n else math.nan, "verdict": verdict, "caution": caution}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment (NaN stays NaN)."""
    p = np.asarray(pvalues, float)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    adjusted, running = np.full(p.size, np.nan), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def compare_arms(metrics: pd.DataFrame, decay_arms: list[str], calibrated_arms: list[str] = ()) -> list[dict]:
    """One row per model x segment x decay arm x other arm: every static rate, and for a
    calibrated arm every hand decay too. `best_static` marks the static rate with the lowest
    mean val loss at that segment."""
    rows = []
    for (model, segment), at in metrics.groupby(["model", "segment"], sort=True):
        val = at.pivot_table(index="seed", columns="arm", values="val_loss", aggfunc="first")
        statics = [a for a in val.columns if a not in decay_arms]
        if not statics:
            continue
        best = min(statics, key=lambda a: (val[a].mean(), a))
        for decay in (a for a in decay_arms if a in val.columns):
            others = statics + ([d for d in decay_arms if d != decay and d not in calibrated_arms and d in val.columns]
                                if decay in calibrated_arms else [])
            for other in others:
                both = val[[decay, other]].dropna()
                rows.append({"model": model, "segment": int(segment), "cap": int(at["cap"].iloc[0]), "decay_arm": decay,
                             "static_arm": other, "other_is_static": other in statics, "best_static": other == best,
                             "decay_val_mean": float(both[decay].mean()), "static_val_mean": float(both[other].mean()),
                             "seeds": [int(s) for s in both.index], "diffs": (both[decay] - both[other]).tolist(),
                             **paired((both[decay] - both[other]).tolist())})
                if other not in statics and rows[-1]["verdict"] == "static better":
                    rows[-1]["verdict"] = "other decay better"
    for key, group in _groups(rows, ("model", "decay_arm", "static_arm")):
        for r, p in zip(group, holm([r["p_better"] for r in group])):
            r["p_holm"] = p
            r["holds"] = bool(p < ALPHA)
    return rows


def _groups(rows: list[dict], keys: tuple[str, ...]):
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out.items()


def _wins_against_all(pairs: list[dict]) -> int:
    """Seeds on which the decay arm beat every static rate at once."""
    per_seed: dict[int, list[bool]] = {}
    for r in pairs:
        for seed, d in zip(r["seeds"], r["diffs"]):
            per_seed.setdefault(seed, []).append(d < 0)
    return sum(len(wins) == len(pairs) and all(wins) for wins in per_seed.values())


def claims(rows: list[dict]) -> list[dict]:
    """Per model, decay arm and cap: does it beat *every* static rate (intersection-union,
    Holm across caps)? Also the worst static pair, which decides."""
    out = []
    statics_only = [r for r in rows if r["other_is_static"]]
    for (model, decay), group in _groups(statics_only, ("model", "decay_arm")):
        per_cap = []
        for (segment,), pairs in _groups(group, ("segment",)):
            worst = max(pairs, key=lambda r: (math.inf if math.isnan(r["p_better"]) else r["p_better"]))
            per_cap.append({"model": model, "decay_arm": decay, "segment": segment, "cap": pairs[0]["cap"],
                            "p_iut": worst["p_better"], "deciding_static": worst["static_arm"],
                            "deciding_mean_diff": worst["mean_diff"], "deciding_ci": [worst["ci_low"], worst["ci_high"]],
                            "wins_against_all": _wins_against_all(pairs), "n": worst["n"],
                            "beaten_statics": sum(r["holds"] for r in pairs), "statics": len(pairs)})
        for c, p in zip(per_cap, holm([c["p_iut"] for c in per_cap])):
            c["p_iut_holm"] = p
            c["beats_every_static"] = bool(p < ALPHA)
        out += per_cap
    return out
