"""Does a decay arm beat a static rate? Paired by seed, at every stream stage.

Every arm of a seed starts from the same initialisation and sees the same batches, so the
per-seed difference (decay − static) in validation loss removes most seed-to-seed noise.
Negative means the decay arm is better. The 95% interval is Student's t on the n paired
differences; with 3 seeds its half-width is 2.48 standard deviations of the differences,
so only a consistent effect excludes zero, and with one seed there is no interval at all.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

LEVEL = 0.95


def paired(diffs: list[float]) -> dict:
    n = len(diffs)
    mean = sum(diffs) / n if n else math.nan
    std = float(pd.Series(diffs).std(ddof=1)) if n > 1 else math.nan
    if n > 1:
        half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        low = high = math.nan
    if n < 2:
        verdict, caution = "no interval (one seed)", "one seed: no interval can be given"
    else:
        verdict = "decay better" if high < 0 else "static better" if low > 0 else "no clear difference"
        caution = f"n={n}: the t-interval is wide; treat it as indicative" if n < 5 else ""
    return {"n": n, "mean_diff": mean, "std_diff": std, "ci_low": low, "ci_high": high,
            "wins": sum(d < 0 for d in diffs), "verdict": verdict, "caution": caution}


def compare_arms(metrics: pd.DataFrame, decay_arms: list[str]) -> list[dict]:
    """One row per model x stage x decay arm x static arm; `best_static` marks the static rate
    with the lowest mean val loss at that stage."""
    rows = []
    for (model, stage), at in metrics.groupby(["model", "stage"], sort=True):
        val = at.pivot_table(index="seed", columns="arm", values="val_loss", aggfunc="first")
        statics = [a for a in val.columns if a not in decay_arms]
        if not statics:
            continue
        best = min(statics, key=lambda a: (val[a].mean(), a))
        for decay in (a for a in decay_arms if a in val.columns):
            for static in statics:
                both = val[[decay, static]].dropna()
                diffs = (both[decay] - both[static]).tolist()
                rows.append({"model": model, "stage": int(stage), "cap": int(at["cap"].iloc[0]), "decay_arm": decay,
                             "static_arm": static, "best_static": static == best,
                             "decay_val_mean": float(both[decay].mean()), "static_val_mean": float(both[static].mean()),
                             "seeds": [int(s) for s in both.index], **paired(diffs)})
    return rows
