"""The committed decisive stream (docs/results/decisive_stream): its declared claims recomputed
from metrics.jsonl with pandas and scipy alone, without the package's analysis code; the
crossing it was designed for; and its gate file run on exactly the stream's settings."""

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "docs" / "results" / "decisive_stream" / "stream"
ARM = "pressure"


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    return pd.DataFrame([json.loads(line) for line in (RUN / "metrics.jsonl").read_text().splitlines()])


def replicate_table(m: pd.DataFrame, value: str) -> pd.DataFrame:
    return m.pivot_table(index=["seed", "order_seed"], columns="arm", values=value, aggfunc="first")


def one_sided(diffs: pd.Series) -> float:
    return float(stats.ttest_1samp(diffs, 0.0, alternative="less").pvalue)


def mde_by_search(n: int, sd: float, alpha: float) -> float:
    """The smallest true mean difference a one-sided paired t-test detects with 80% power, by a
    brute-force grid over the noncentral t (not the package's root finder)."""
    grid = np.linspace(0, 10 * sd, 100_001)
    power = stats.nct.sf(stats.t.ppf(1 - alpha, n - 1), n - 1, grid * np.sqrt(n) / sd)
    return float(grid[np.argmax(power >= 0.8)])


def test_every_declared_claim_is_recomputed_from_metrics_with_scipy(metrics):
    growing = metrics[~metrics["arm"].str.endswith("@fixed")]
    fixed = metrics[metrics["arm"].str.endswith("@fixed")]
    statics = sorted(a for a in growing["arm"].unique() if a.startswith("static:"))
    last = growing["segment"].max()
    expected = []
    # (1) at the last cap, the pressure arm beats every static: the largest of the one-sided p's
    test = replicate_table(growing[growing["segment"] == last], "test_loss")
    p = {s: one_sided(test[ARM] - test[s]) for s in statics}
    deciding = max(p, key=p.get)
    expected.append((p[deciding], test[ARM] - test[deciding], deciding))
    # (2) the same on each replicate's test loss averaged over the four caps
    mean_test = growing.groupby(["seed", "order_seed", "arm"])["test_loss"].mean().unstack()
    p = {s: one_sided(mean_test[ARM] - mean_test[s]) for s in statics}
    deciding = max(p, key=p.get)
    expected.append((p[deciding], mean_test[ARM] - mean_test[deciding], deciding))
    # (3) the interaction at the last cap against the best static there (chosen on validation)
    val = replicate_table(growing[growing["segment"] == last], "val_loss")
    best = min(statics, key=lambda s: (val[s].mean(), s))
    twins = replicate_table(fixed[fixed["segment"] == last], "test_loss")
    did = (test[ARM] - test[best]) - (twins[ARM + "@fixed"] - twins[best + "@fixed"])
    expected.append((one_sided(did), did, best))

    primary = json.loads((RUN / "primary.json").read_text())
    assert [r["claim"] for r in primary] == ["pressure beats every static at last", "pressure beats every static at trajectory",
                                             "pressure helps more as data grows at last"]
    ps = [e[0] for e in expected]
    order = np.argsort(ps, kind="stable")
    holm = np.empty(3)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * ps[i]))
        holm[i] = running
    for row, (p_value, diffs, against), p_holm in zip(primary, expected, holm):
        assert row["metric"] == "test_loss" and row["n"] == len(diffs) == 9
        assert row["against"] == against
        assert row["p"] == pytest.approx(p_value, rel=1e-9)
        assert row["p_holm"] == pytest.approx(p_holm, rel=1e-9)
        assert row["holds"] == bool(p_holm < 0.05)
        assert row["estimate"] == pytest.approx(diffs.mean(), abs=1e-12)
        low, high = stats.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=stats.sem(diffs))
        assert row["ci"] == pytest.approx([low, high], abs=1e-9)
        sd = diffs.std(ddof=1)
        assert row["mde_80"] == pytest.approx(mde_by_search(len(diffs), sd, 0.05 / 3), abs=1e-4 * sd)


def test_the_stream_crosses_from_dropout_helping_to_not_on_validation(metrics):
    growing = metrics[metrics["arm"].str.startswith("static:") & ~metrics["arm"].str.endswith("@fixed")]
    mean_val = growing.pivot_table(index="segment", columns="arm", values="val_loss", aggfunc="mean")
    best = [float(a.split(":")[1]) for a in mean_val.idxmin(axis=1)]
    assert best[0] >= 0.1 and best[-1] <= 0.05


def test_the_gate_ran_the_streams_settings_with_only_its_arms_and_replicates_narrowed():
    stream = tomllib.loads((ROOT / "studies" / "decisive_stream.toml").read_text())
    gate = tomllib.loads((ROOT / "studies" / "decisive_gate.toml").read_text())
    narrowed = {"order_seeds", "decays", "fixed_pool_controls", "claims"}
    assert {k: v for k, v in gate.items() if k not in narrowed} == {k: v for k, v in stream.items() if k not in narrowed}
    assert gate["decays"] == [] and set(gate["order_seeds"]) < set(stream["order_seeds"])
    config = json.loads((RUN / "config.json").read_text())
    assert config["settings"]["claims"]["primary"] == stream["claims"]["primary"]
