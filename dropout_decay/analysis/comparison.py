"""Does a decay arm beat a static rate? Paired by replicate, at every stream segment (token cap).

A replicate is a (seed, order seed) pair: every arm of a replicate starts from the same
initialisation, sees the same batches and the same documents in each cap, so the per-replicate
difference Δ = loss(decay) − loss(other) removes most of their noise; negative means the decay
arm is better. The best static rate at a cap is chosen on validation loss; Δ is measured on the
held-out test loss (`metric`; validation for studies made before the test split existed).

Per pair and cap: the mean Δ, a two-sided 95% Student-t interval, the one-sided p-value of
"decay is better" (paired t-test), wins and the probability of improvement, and `mde_80`, the
smallest true Δ the test would detect with 80% power at this n and spread. One verdict
vocabulary: "decay better" when the one-sided p, Holm-adjusted across the caps of the pair, is
below `ALPHA` (then `holds`); "static better" when the opposite one-sided test is; else "no
clear difference". The interval is descriptive and unadjusted, so it may exclude 0 where the
adjusted test does not.

Claims, at the strength the data allows: "beats every static rate at cap c" is an
intersection-union test (every pair must hold: its p-value is the largest of the pairs', with no
correction across statics), then Holm across caps. With 3 replicates the interval's half-width
is 2.48 standard deviations of Δ and `mde_80` is 2.3 of them (4.0 after Holm over 3 caps).
Arms named `ARM@fixed` (fixed-pool controls) are compared among themselves, `pool = fixed`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..model import base_name, is_twin, twin_name

LEVEL = 0.95
ALPHA = 0.05
POWER = 0.8


def mde(n: int, std: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a one-sided paired t-test at `alpha` detects with
    probability `power` (noncentral t), given n replicates whose differences spread by `std`."""
    if n < 2 or not std > 0:
        return math.nan
    df, crit = n - 1, float(stats.t.ppf(1 - alpha, n - 1))
    short = lambda d: float(stats.nct.sf(crit, df, d * math.sqrt(n) / std)) - power  # noqa: E731
    high = std
    while short(high) < 0:
        high *= 2
    return float(optimize.brentq(short, 0.0, high, xtol=1e-12 * std))


def paired(diffs: list[float]) -> dict:
    n = len(diffs)
    mean = float(np.mean(diffs)) if n else math.nan
    std = float(np.std(diffs, ddof=1)) if n > 1 else math.nan
    if n > 1 and std > 0:
        half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n)
        low, high = mean - half, mean + half
        p_better = float(stats.t.cdf(mean / (std / math.sqrt(n)), n - 1))
        p_worse = 1.0 - p_better
    elif n > 1:  # every replicate moved by exactly the same amount
        low = high = mean
        p_better, p_worse = (0.0 if mean < 0 else 1.0), (0.0 if mean > 0 else 1.0)
    else:
        low = high = p_better = p_worse = math.nan
    caution = ("one replicate: no interval can be given" if n < 2 else
               f"n={n}: the t-interval is wide; treat it as indicative" if n < 5 else "")
    wins = int(sum(d < 0 for d in diffs))
    return {"n": n, "mean_diff": mean, "std_diff": std, "ci_low": low, "ci_high": high, "p_better": p_better,
            "p_worse": p_worse, "wins": wins,
            "prob_improvement": wins / n if n else math.nan, "mde_80": mde(n, std), "caution": caution}


def verdict(p_holm: float, p_worse_holm: float, n: int, better: str = "decay better", worse: str = "static better") -> str:
    if n < 2:
        return "no interval (one replicate)"
    return better if p_holm < ALPHA else worse if p_worse_holm < ALPHA else "no clear difference"


def by_replicate(metrics: pd.DataFrame) -> pd.DataFrame:
    """For analyses keyed on `seed` (selection, the probe): with several order seeds, `seed`
    becomes the replicate's label "seed/order_seed", so no replicate is dropped or merged."""
    if "order_seed" not in metrics or metrics["order_seed"].nunique() < 2:
        return metrics
    return metrics.assign(seed=metrics["seed"].astype(str) + "/" + metrics["order_seed"].astype(str))


def replicate_labels(index: pd.Index) -> list[list[int]]:
    """A pivot's rows as JSON-ready replicates: [seed] or [seed, order_seed]."""
    return [list(map(int, r)) if isinstance(r, tuple) else [int(r)] for r in index]


def replicates(metrics: pd.DataFrame) -> list[str]:
    """The columns that name a replicate: the seed, and the order seed where the rows carry one."""
    return ["seed", "order_seed"] if "order_seed" in metrics and metrics["order_seed"].notna().all() else ["seed"]


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


def compare_arms(metrics: pd.DataFrame, decay_arms: list[str], calibrated_arms: list[str] = (),
                 metric: str = "val_loss") -> list[dict]:
    """One row per model x pool x segment x decay arm x other arm: every static rate, and for a
    calibrated arm every hand decay too. `best_static` marks the static rate with the lowest mean
    validation loss at that segment; the differences are in `metric`."""
    rows = []
    fixed = metrics["arm"].map(is_twin)
    for pool, part in (("growing", metrics[~fixed]), ("fixed", metrics[fixed])):
        name = twin_name if pool == "fixed" else base_name
        decays, calibrated = [name(d) for d in decay_arms], [name(c) for c in calibrated_arms]
        for (model, segment), at in part.groupby(["model", "segment"], sort=True):
            key = replicates(at)
            loss = at.pivot_table(index=key, columns="arm", values=metric, aggfunc="first")
            chosen = at.pivot_table(index=key, columns="arm", values="val_loss", aggfunc="first")
            statics = [a for a in loss.columns if a not in decays]
            if not statics:
                continue
            best = min(statics, key=lambda a: (chosen[a].mean(), a))
            for decay in (a for a in decays if a in loss.columns):
                others = statics + ([d for d in decays if d != decay and d not in calibrated and d in loss.columns]
                                    if decay in calibrated else [])
                for other in others:
                    both = loss[[decay, other]].dropna()
                    diffs = (both[decay] - both[other]).tolist()
                    rows.append({"model": model, "pool": pool, "segment": int(segment), "cap": int(at["cap"].iloc[0]),
                                 "decay_arm": decay, "static_arm": other, "other_is_static": other in statics,
                                 "best_static": other == best, "metric": metric,
                                 "decay_mean": float(both[decay].mean()), "static_mean": float(both[other].mean()),
                                 "replicates": replicate_labels(both.index),
                                 "diffs": diffs, **paired(diffs)})
    for _, group in _groups(rows, ("model", "pool", "decay_arm", "static_arm")):
        for r, p, q in zip(group, holm([r["p_better"] for r in group]), holm([r["p_worse"] for r in group])):
            worse = "static better" if r["other_is_static"] else "other decay better"
            r |= {"p_holm": p, "p_worse_holm": q, "verdict": verdict(p, q, r["n"], worse=worse)}
            r["holds"] = r["verdict"] == "decay better"
    return rows


def _groups(rows: list[dict], keys: tuple[str, ...]):
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out.items()


def _wins_against_all(pairs: list[dict]) -> int:
    """Replicates on which the decay arm beat every static rate at once."""
    per_seed: dict[tuple, list[bool]] = {}
    for r in pairs:
        for replicate, d in zip(r["replicates"], r["diffs"]):
            per_seed.setdefault(tuple(replicate), []).append(d < 0)
    return sum(len(wins) == len(pairs) and all(wins) for wins in per_seed.values())


def claims(rows: list[dict]) -> list[dict]:
    """Per model, decay arm and cap on the growing stream: does it beat *every* static rate
    (intersection-union, Holm across caps)? Also the worst static pair, which decides, and the
    effect it could have detected (`mde_80` of that pair at the Holm family's first threshold)."""
    out = []
    statics_only = [r for r in rows if r["other_is_static"] and r.get("pool", "growing") == "growing"]
    for (model, decay), group in _groups(statics_only, ("model", "decay_arm")):
        per_cap = []
        for (segment,), pairs in _groups(group, ("segment",)):
            worst = max(pairs, key=lambda r: (math.inf if math.isnan(r["p_better"]) else r["p_better"]))
            per_cap.append({"model": model, "decay_arm": decay, "segment": segment, "cap": pairs[0]["cap"],
                            "p_iut": worst["p_better"], "deciding_static": worst["static_arm"],
                            "deciding_mean_diff": worst["mean_diff"], "deciding_ci": [worst["ci_low"], worst["ci_high"]],
                            "deciding_std": worst["std_diff"], "metric": worst.get("metric", "val_loss"),
                            "wins_against_all": _wins_against_all(pairs), "n": worst["n"],
                            "beaten_statics": sum(r["holds"] for r in pairs), "statics": len(pairs)})
        for c, p in zip(per_cap, holm([c["p_iut"] for c in per_cap])):
            c["p_iut_holm"] = p
            c["beats_every_static"] = bool(p < ALPHA)
            c["mde_80"] = mde(c["n"], c["deciding_std"], ALPHA / len(per_cap))
        out += per_cap
    return out
