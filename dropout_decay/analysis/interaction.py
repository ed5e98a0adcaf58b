"""The mechanism test: does a decay help more when the data grows than on a fixed pool?

A decay arm's rate falls with training progress, which in a stream moves in lockstep with the
growing cap and with the learning-rate anneal. Its `@fixed` twin runs the same schedule, steps
and learning rate on the final cap from step 0, so the two differ only in whether the data grew.
Per decay and cap, with S the best static rate on the growing stream (chosen on validation):

    DiD = (decay − S) on the growing stream − (decay@fixed − S@fixed) on the fixed pool

paired per replicate, in the judged metric (test loss). DiD < 0: the decay's advantage is larger
when data grows, which is what the hypothesis predicts; DiD ≈ 0: "late-low dropout helps anyway"
explains whatever advantage there is. Per decay, Holm across caps; one-sided p of DiD < 0.
"""

from __future__ import annotations

import pandas as pd

from ..model import is_twin, twin_name
from .comparison import holm, paired, replicate_labels, replicates, verdict


def fixed_pool_interaction(metrics: pd.DataFrame, decay_arms: list[str], metric: str = "val_loss") -> list[dict]:
    rows = []
    for (model, segment), at in metrics.groupby(["model", "segment"], sort=True):
        key = replicates(at)
        loss = at.pivot_table(index=key, columns="arm", values=metric, aggfunc="first")
        chosen = at.pivot_table(index=key, columns="arm", values="val_loss", aggfunc="first")
        statics = [a for a in loss.columns if not is_twin(a) and a not in decay_arms]
        paired_statics = [a for a in statics if twin_name(a) in loss.columns]
        if not paired_statics:
            continue
        best = min(statics, key=lambda a: (chosen[a].mean(), a))
        cap = int(at.loc[~at["arm"].map(is_twin), "cap"].iloc[0])
        for decay in (d for d in decay_arms if d in loss.columns and twin_name(d) in loss.columns):
            if twin_name(best) not in loss.columns:
                continue
            cols = [decay, best, twin_name(decay), twin_name(best)]
            both = loss[cols].dropna()
            growing = both[decay] - both[best]
            fixed = both[twin_name(decay)] - both[twin_name(best)]
            rows.append({"model": model, "segment": int(segment), "cap": cap, "decay_arm": decay, "best_static": best,
                         "metric": metric, "growing_diff_mean": float(growing.mean()), "fixed_diff_mean": float(fixed.mean()),
                         "replicates": replicate_labels(both.index),
                         "diffs": (growing - fixed).tolist(), **paired((growing - fixed).tolist())})
    by_decay: dict[tuple, list[dict]] = {}
    for r in rows:
        by_decay.setdefault((r["model"], r["decay_arm"]), []).append(r)
    for group in by_decay.values():
        for r, p, q in zip(group, holm([r["p_better"] for r in group]), holm([r["p_worse"] for r in group])):
            r |= {"p_holm": p, "p_worse_holm": q,
                  "verdict": verdict(p, q, r["n"], "relatively better as data grows", "relatively better on a fixed pool")}
    return rows
