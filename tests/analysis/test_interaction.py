"""The fixed-pool interaction (analysis/interaction.py) and the stream's claims, recomputed with
pandas and scipy from a real tiny stream's metrics.jsonl alone."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dropout_decay.cli import main as cli
from tests.conftest import TEST_VOCAB

CAPS = [3000, 6000, 12000]


def stream_file(tmp_path, cache_dir, claims=True) -> str:
    lines = ['stage = "stream"', 'device = "cpu"', "use_cached_data = true", f'cache_dir = "{cache_dir}"',
             f"vocab_size = {TEST_VOCAB}", 'models = ["winner=1x2x32"]', "seeds = [1, 2]", "order_seeds = [0, 1]",
             "dropout_rates = [0.0, 0.1]", 'decays = ["cos:0.3:0.1:cosine", "early:0.1:0:linear:0.25"]',
             f"stream_token_caps = {CAPS}", "stage_steps = 10", "fixed_pool_controls = true", "matched_statics = true",
             "batch_size = 4", "seq_len = 32", "eval_batches = 2", "eval_every = 5", "log_every = 5"]
    if claims:
        lines += ["[claims]", 'primary = ["cos beats every static at last", "cos helps more as data grows at last", '
                  '"early beats static:0 at 6000"]']
    path = tmp_path / "evidence.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def evidence_stream(cache_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evidence")
    out = tmp / "run"
    assert cli.main(["run", stream_file(tmp, cache_dir), "--output-dir", str(out)]) == 0
    return out


def metrics(out) -> pd.DataFrame:
    return pd.DataFrame([json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()])


def scipy_pairs(m: pd.DataFrame) -> dict:
    """Per segment and decay: (best static on validation, test-loss diffs per replicate), growing stream."""
    out = {}
    growing = m[~m["arm"].str.endswith("@fixed")]
    for seg, at in growing.groupby("segment"):
        val = at.pivot_table(index=["seed", "order_seed"], columns="arm", values="val_loss")
        test = at.pivot_table(index=["seed", "order_seed"], columns="arm", values="test_loss")
        statics = [a for a in val.columns if a.startswith("static:")]
        best = min(statics, key=lambda a: (val[a].mean(), a))
        out[seg] = (best, statics, test)
    return out


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
