"""The choices the analysis makes, each guarded by a fixture on which the alternatives give
other answers (issue 32): Holm, not Bonferroni or no correction, across the declared claims; the
best static rate chosen on validation, never on the judged test loss; the declared claims'
mde_80 at the family's first threshold, alpha / number of claims; twins and arms paired by
replicate (seed and order seed), not by row order. Oracles: scipy and numpy written out here."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from dropout_decay.analysis import claims, compare_arms, fixed_pool_interaction, judge
from dropout_decay.analysis.comparison import holm

ALPHA = 0.05
SEEDS = [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]  # (seed, order seed): six replicates


def mde_80(n: int, sd: float, alpha: float) -> float:
    crit = stats.t.ppf(1 - alpha, n - 1)
    return optimize.brentq(lambda d: stats.nct.sf(crit, n - 1, d * math.sqrt(n) / sd) - 0.8, 1e-12, 100 * sd)


def stream(judged: dict[str, list[float]], chosen: dict[str, list[float]] | None = None, segment: int = 0) -> pd.DataFrame:
    """One segment of a stream: per arm, the test loss of each replicate, and the validation loss
    that decisions read (the same unless `chosen` says otherwise)."""
    chosen = chosen or judged
    return pd.DataFrame([{"model": "winner", "segment": segment, "cap": 1000 * (segment + 1), "seed": s, "order_seed": o,
                          "arm": arm, "test_loss": judged[arm][i], "val_loss": chosen[arm][i]}
                         for arm in judged for i, (s, o) in enumerate(SEEDS)])


def test_holm_adjusts_as_written_out_and_differs_from_bonferroni_and_from_none():
    p = [0.01, 0.04, 0.03, 0.5]
    expected = [0.04, 0.09, 0.09, 0.5]  # sorted 0.01, 0.03, 0.04, 0.5 -> 4x, 3x, 2x (running max), 1x
    assert holm(p) == pytest.approx(expected)
    assert holm(p) != pytest.approx([min(1, 4 * x) for x in p]) and holm(p) != pytest.approx(p)


def test_the_best_static_is_chosen_on_validation_even_where_test_loss_prefers_another():
    judged = {"static:0": [4.0] * 6, "static:0.1": [3.9, 3.91, 3.92, 3.9, 3.91, 3.92], "static:0.2": [3.8] * 6,
              "d": [3.85, 3.86, 3.84, 3.85, 3.87, 3.83]}
    chosen = {**judged, "static:0.1": [3.7] * 6}  # validation prefers 0.1; test would prefer 0.2
    rows = compare_arms(stream(judged, chosen), ["d"], [], "test_loss")
    assert [r["static_arm"] for r in rows if r["best_static"]] == ["static:0.1"]
    # the differences themselves are in the judged metric, pair by pair
    vs = next(r for r in rows if r["static_arm"] == "static:0.2")
    assert vs["mean_diff"] == pytest.approx(np.mean(np.array(judged["d"]) - np.array(judged["static:0.2"])))


def test_arms_are_paired_by_replicate_not_by_row_order():
    rng = np.random.default_rng(3)
    judged = {"static:0": list(4 + rng.normal(0, 0.05, 6)), "d": list(3.9 + rng.normal(0, 0.05, 6))}
    frame = stream(judged)
    shuffled = frame.sample(frac=1, random_state=1)  # rows in another order: the pairs must not change
    [row] = compare_arms(shuffled, ["d"], [], "test_loss")
    diffs = np.array(judged["d"]) - np.array(judged["static:0"])
    assert row["mean_diff"] == pytest.approx(diffs.mean())
    assert row["p_better"] == pytest.approx(stats.ttest_rel(judged["d"], judged["static:0"], alternative="less").pvalue)
    # pairing by seed alone would merge the two order seeds of each seed: other replicates, another p
    by_seed = frame.groupby(["arm", "seed"])["test_loss"].mean().unstack(0)
    assert row["n"] == 6 and stats.ttest_rel(by_seed["d"], by_seed["static:0"], alternative="less").pvalue != pytest.approx(
        row["p_better"])


def test_a_twin_is_paired_with_its_arm_replicate_by_replicate():
    rng = np.random.default_rng(5)
    arms = {a: list(4 + rng.normal(0, 0.05, 6)) for a in ("static:0", "static:0.1", "d", "static:0@fixed",
                                                          "static:0.1@fixed", "d@fixed")}
    frame = stream(arms).sample(frac=1, random_state=2)
    [row] = [r for r in fixed_pool_interaction(frame, ["d"], "test_loss")]
    best = min(("static:0", "static:0.1"), key=lambda a: np.mean(arms[a]))
    did = ((np.array(arms["d"]) - np.array(arms[best])) - (np.array(arms["d@fixed"]) - np.array(arms[best + "@fixed"])))
    assert row["best_static"] == best and row["mean_diff"] == pytest.approx(did.mean())
    assert row["std_diff"] == pytest.approx(did.std(ddof=1))


def test_declared_claims_are_one_holm_family_with_mde_at_alpha_over_the_family():
    judged = {"static:0": [4.0, 4.02, 3.99, 4.01, 4.03, 3.98], "static:0.1": [3.95, 3.97, 3.96, 3.94, 3.98, 3.95],
              "d": [3.90, 3.93, 3.91, 3.92, 3.90, 3.94], "e": [3.96, 3.94, 3.97, 3.95, 3.93, 3.96]}
    frame = stream(judged)
    comparison = compare_arms(frame, ["d", "e"], [], "test_loss")
    declared = {"primary": ["d beats every static at last", "e beats every static at last",
                            "d beats static:0.1 at last"]}
    rows = judge(declared, comparison, claims(comparison), [])
    raw = []
    for arm, against in (("d", ("static:0", "static:0.1")), ("e", ("static:0", "static:0.1")), ("d", ("static:0.1",))):
        raw.append(max(stats.ttest_rel(judged[arm], judged[s], alternative="less").pvalue for s in against))
    assert [r["p"] for r in rows] == pytest.approx(raw)
    assert [r["p_holm"] for r in rows] == pytest.approx(holm(raw))
    diffs = np.array(judged["d"]) - np.array(judged["static:0.1"])
    assert rows[2]["mde_80"] == pytest.approx(mde_80(6, diffs.std(ddof=1), ALPHA / 3), rel=1e-6)
    assert rows[2]["mde_80"] != pytest.approx(mde_80(6, diffs.std(ddof=1), ALPHA), rel=1e-3)
