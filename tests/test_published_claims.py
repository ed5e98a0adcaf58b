"""The committed scale-model answer, recomputed from its metrics.jsonl with pandas and scipy alone
(no code of the package): every declared primary claim's estimate, interval, Holm-adjusted p and
mde_80 must match docs/results/seed_scale_model/stream/primary.json."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

STREAM = Path(__file__).resolve().parents[1] / "docs" / "results" / "seed_scale_model" / "stream"
ALPHA = 0.05


def mde_80(n: int, sd: float, alpha: float) -> float:
    """Smallest true mean difference a one-sided paired t-test at `alpha` finds with 80% power."""
    crit = stats.t.ppf(1 - alpha, n - 1)
    return optimize.brentq(lambda d: stats.nct.sf(crit, n - 1, d * math.sqrt(n) / sd) - 0.8, 1e-12, 100 * sd, xtol=1e-14)


def recompute() -> list[dict]:
    rows = pd.read_json(STREAM / "metrics.jsonl", lines=True)
    claims = json.loads((STREAM / "config.json").read_text())["settings"]["claims"]["primary"]
    last = rows[rows["segment"] == rows["segment"].max()]
    test = last.pivot_table(index=["seed", "order_seed"], columns="arm", values="test_loss")
    val = last.pivot_table(index=["seed", "order_seed"], columns="arm", values="val_loss")
    statics = [a for a in test.columns if a.startswith("static:") and not a.endswith("@fixed")]
    best = min(statics, key=lambda a: (val[a].mean(), a))  # chosen on validation, never on test
    out = []
    for text in claims:
        arm = text.split()[0]
        if "beats every static" in text:  # intersection-union: the static the decay does worst against decides
            p_by = {s: stats.ttest_rel(test[arm], test[s], alternative="less").pvalue for s in statics}
            against = max(p_by, key=p_by.get)
            diffs = test[arm] - test[against]
            p = p_by[against]
        else:  # helps more as data grows: difference in differences against the fixed-pool twins
            diffs = (test[arm] - test[best]) - (test[arm + "@fixed"] - test[best + "@fixed"])
            p = stats.ttest_1samp(diffs, 0.0, alternative="less").pvalue
        n, sd = len(diffs), float(np.std(diffs, ddof=1))
        ci = stats.t.interval(0.95, n - 1, loc=diffs.mean(), scale=sd / math.sqrt(n))
        out.append({"claim": text, "estimate": float(diffs.mean()), "ci": list(ci), "p": float(p), "n": n, "sd": sd})
    order = sorted(range(len(out)), key=lambda i: out[i]["p"])
    running = 0.0
    for rank, i in enumerate(order):  # Holm's step-down
        running = max(running, min(1.0, (len(out) - rank) * out[i]["p"]))
        out[i]["p_holm"] = running
    for r in out:
        r["mde_80"] = mde_80(r["n"], r["sd"], ALPHA / len(out))
    return out


@pytest.mark.skipif(not (STREAM / "primary.json").is_file(), reason="the scale model's results are not committed")
def test_the_committed_primary_claims_recompute_from_the_metrics_alone():
    published = {r["claim"]: r for r in json.loads((STREAM / "primary.json").read_text())}
    mine = recompute()
    assert [r["claim"] for r in mine] == list(published) and len(mine) == 3
    for r in mine:
        p = published[r["claim"]]
        assert r["n"] == p["n"] == 6  # 3 seeds x 2 document orders
        assert r["estimate"] == pytest.approx(p["estimate"], abs=1e-12)
        assert r["ci"] == pytest.approx(p["ci"], abs=1e-9)
        assert r["p_holm"] == pytest.approx(p["p_holm"], abs=1e-9)
        assert r["mde_80"] == pytest.approx(p["mde_80"], rel=1e-6)
        assert (r["p_holm"] < ALPHA) == p["holds"]
