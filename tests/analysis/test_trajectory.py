"""The trajectory (analysis/trajectory.py): each replicate's loss averaged over every cap, judged
like one more cap, recomputed here with plain pandas and scipy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dropout_decay.analysis import compare_trajectory

CAPS = [1000, 4000, 16000]


def stream_metrics(rng, replicates=((1, 0), (2, 0), (3, 1), (4, 1))) -> pd.DataFrame:
    """A stream where dropout helps at the first cap and hurts at the last: static 0.2 is best
    early, static 0 late, and the decay `d` follows them; twins on the last cap throughout."""
    truth = {"static:0": [5.0, 4.0, 3.50], "static:0.2": [4.6, 3.95, 3.60], "d": [4.65, 3.93, 3.52],
             "static:0@fixed": [3.9, 3.6, 3.50], "static:0.2@fixed": [3.95, 3.65, 3.58], "d@fixed": [3.92, 3.62, 3.53]}
    rows = []
    for seed, order in replicates:
        shift = rng.normal(0, 0.05, len(CAPS))  # what the replicate shares across arms
        for arm, losses in truth.items():
            for i, (cap, loss) in enumerate(zip(CAPS, losses)):
                noise = rng.normal(0, 0.01)
                rows.append({"model": "winner", "arm": arm, "seed": seed, "order_seed": order, "segment": i, "cap": cap,
                             "val_loss": loss + shift[i] + noise, "test_loss": loss + shift[i] + noise + rng.normal(0, 0.003),
                             "train_loss": 3.0})
    return pd.DataFrame(rows)


def test_trajectory_claims_are_paired_t_tests_on_each_replicates_mean_over_caps():
    m = stream_metrics(np.random.default_rng(0))
    t = compare_trajectory(m, ["d"], [], "test_loss")
    growing = m[~m["arm"].str.endswith("@fixed")]
    val = growing.groupby(["seed", "order_seed", "arm"])["val_loss"].mean().unstack()
    test = growing.groupby(["seed", "order_seed", "arm"])["test_loss"].mean().unstack()
    best = min(["static:0", "static:0.2"], key=lambda a: val[a].mean())
    p = {s: stats.ttest_1samp(test["d"] - test[s], 0.0, alternative="less").pvalue for s in ("static:0", "static:0.2")}
    [claim] = t["claims"]
    assert claim["cap"] == "trajectory" and claim["segment"] is None and claim["n"] == 4
    assert claim["p_iut"] == pytest.approx(max(p.values())) and claim["deciding_static"] == max(p, key=p.get)
    pair = next(r for r in t["comparison"] if r["static_arm"] == best)
    assert pair["best_static"] and pair["mean_diff"] == pytest.approx((test["d"] - test[best]).mean(), abs=1e-12)
    fixed = m[m["arm"].str.endswith("@fixed")].groupby(["seed", "order_seed", "arm"])["test_loss"].mean().unstack()
    did = (test["d"] - test[best]) - (fixed["d@fixed"] - fixed[best + "@fixed"])
    [inter] = t["interaction"]
    assert inter["cap"] == "trajectory" and inter["best_static"] == best
    assert inter["p_better"] == pytest.approx(stats.ttest_1samp(did, 0.0, alternative="less").pvalue)


def test_a_point_that_missed_a_cap_is_left_out_not_averaged_over_fewer():
    m = stream_metrics(np.random.default_rng(1))
    cut = m[~((m["seed"] == 4) & (m["arm"] == "d") & (m["segment"] == 2))]
    [claim] = compare_trajectory(cut, ["d"], [], "test_loss")["claims"]
    assert claim["n"] == 3  # the replicate whose decay lacks the last cap drops out of every pair with `d`
    assert compare_trajectory(m[m["segment"] == 0], ["d"], [], "test_loss") == {"comparison": [], "claims": [], "interaction": []}
