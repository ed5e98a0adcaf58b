"""The fixed-pool interaction (analysis/interaction.py) and the stream's claims, recomputed with
pandas and scipy from a real tiny stream's metrics.jsonl alone."""

import json

import numpy as np
import pytest
from scipy import stats

from tests.conftest import metrics, scipy_pairs


def test_interaction_and_claims_recomputed_with_scipy_from_metrics_alone(evidence_stream):
    m = metrics(evidence_stream)
    pairs = scipy_pairs(m)
    fixed = m[m["arm"].str.endswith("@fixed")]
    interaction = json.loads((evidence_stream / "interaction.json").read_text())
    assert {(r["decay_arm"], r["segment"]) for r in interaction} == {(d, s) for d in ("cos", "early") for s in range(3)}
    for decay in ("cos", "early"):
        ps, rows = [], sorted((r for r in interaction if r["decay_arm"] == decay), key=lambda r: r["segment"])
        for r in rows:
            best, _, test = pairs[r["segment"]]
            ftest = fixed[fixed["segment"] == r["segment"]].pivot_table(index=["seed", "order_seed"], columns="arm",
                                                                          values="test_loss")
            did = (test[decay] - test[best]) - (ftest[decay + "@fixed"] - ftest[best + "@fixed"])
            assert r["best_static"] == best and r["n"] == 4 and r["metric"] == "test_loss"
            assert r["mean_diff"] == pytest.approx(did.mean(), abs=1e-12)
            low, high = stats.t.interval(0.95, 3, loc=did.mean(), scale=stats.sem(did))
            assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high))
            ps.append(stats.ttest_1samp(did, 0.0, alternative="less").pvalue)
            assert r["p_better"] == pytest.approx(ps[-1])
        adjusted = [min(1.0, max((3 - i) * sorted(ps)[i] for i in range(k + 1))) for k in range(3)]
        order = np.argsort(ps, kind="stable")
        assert [rows[j]["p_holm"] for j in order] == pytest.approx(adjusted)
    claims = json.loads((evidence_stream / "claims.json").read_text())
    for decay in ("cos", "early"):
        rows = sorted((c for c in claims if c["decay_arm"] == decay), key=lambda c: c["segment"])
        p_iut = []
        for c in rows:
            _, statics, test = pairs[c["segment"]]
            p = {s: stats.ttest_1samp(test[decay] - test[s], 0.0, alternative="less").pvalue for s in statics}
            deciding = max(p, key=p.get)
            p_iut.append(p[deciding])
            assert c["p_iut"] == pytest.approx(p[deciding]) and c["deciding_static"] == deciding and c["n"] == 4
            sd = (test[decay] - test[deciding]).std(ddof=1)
            crit = stats.t.ppf(1 - 0.05 / 3, 3)
            grid = np.linspace(0, 20 * sd, 200_001)  # a brute-force search, not the code's root finder
            power = stats.nct.sf(crit, 3, grid * 2 / sd)
            assert c["mde_80"] == pytest.approx(grid[np.argmax(power >= 0.8)], abs=1e-4 * sd)
        order = np.argsort(p_iut, kind="stable")
        holm = [min(1.0, max((3 - i) * np.sort(p_iut)[i] for i in range(k + 1))) for k in range(3)]
        assert [rows[j]["p_iut_holm"] for j in order] == pytest.approx(holm)
