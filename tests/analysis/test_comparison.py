"""The paired comparison (analysis/comparison.py): its statistics at their edges (0, 1, 2 and 5 seeds,
ties, zero spread) against scipy or by hand, Holm, and compare_arms / claims on frames and on
constructed studies whose answer is known."""

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats

from dropout_decay.analysis.comparison import (
    claims,
    compare_arms,
    holm,
    mde,
    paired,
    verdict,
)
from dropout_decay.sweep.storage import open_storage, sqlite_url
from tests.conftest import (
    T_975_2DF,
    VAL,
    constructed_stream,
)


def scipy_paired(diffs):
    """mean, std, 95% t-interval and one-sided p of "decay better", by scipy alone."""
    d = np.array(diffs)
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    return d.mean(), d.std(ddof=1), low, high, stats.ttest_1samp(d, 0.0, alternative="less").pvalue


NAN = math.nan


ONE_SEED = ("no interval (one replicate)", "one replicate: no interval can be given")


def frame(rows):
    return pd.DataFrame([{"model": m, "segment": g, "cap": 1000 * (g + 1), "seed": s, "arm": a, "val_loss": v}
                         for m, g, s, a, v in rows])


def by_hand(diffs):
    n = len(diffs)
    mean = sum(diffs) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = T_975_2DF * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def optuna_note(run: Path, name: str) -> str:
    from optuna_dashboard import get_note

    return get_note(optuna.load_study(study_name=name, storage=open_storage(sqlite_url(run))))


def hand_holm(p):
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


@pytest.mark.parametrize("diffs", [[-0.1, -0.3], [-0.1, 0.0, 0.2], [0.05, 0.1, 0.12, -0.01], [-0.2, -0.1, -0.15, -0.3, -0.05]])
def test_paired_matches_scipy_from_two_seeds_up(diffs):
    r = paired(diffs)
    mean, std, low, high, p = scipy_paired(diffs)
    assert (r["mean_diff"], r["std_diff"], r["ci_low"], r["ci_high"], r["p_better"]) == pytest.approx((mean, std, low, high, p))
    assert r["p_worse"] == pytest.approx(stats.ttest_1samp(diffs, 0.0, alternative="greater").pvalue)
    assert r["wins"] == sum(d < 0 for d in diffs) and r["prob_improvement"] == pytest.approx(r["wins"] / len(diffs))
    assert r["caution"] == ("" if len(diffs) >= 5 else f"n={len(diffs)}: the t-interval is wide; treat it as indicative")


@pytest.mark.parametrize("diffs, mean, p_better, expected, wins", [
    ([-0.2, -0.2], -0.2, 0.0, "decay better", 2),  # every seed moved alike: certain, in its direction
    ([0.5, 0.5], 0.5, 1.0, "static better", 0),
    ([0.0, 0.0, 0.0], 0.0, 1.0, "no clear difference", 0),  # no change is not an improvement
])
def test_paired_with_zero_spread(diffs, mean, p_better, expected, wins):
    r = paired(diffs)
    assert r["std_diff"] == 0 and r["ci_low"] == r["ci_high"] == r["mean_diff"] == pytest.approx(mean)
    assert (r["p_better"], r["wins"]) == (p_better, wins)
    assert globals()["verdict"](r["p_better"], r["p_worse"], r["n"]) == expected


@pytest.mark.parametrize("diffs, mean, wins, prob", [([-0.1], -0.1, 1, 1.0), ([0.0], 0.0, 0, 0.0), ([], NAN, 0, NAN)])
def test_paired_with_fewer_than_two_seeds_gives_no_interval(diffs, mean, wins, prob):
    r = paired(diffs)
    assert r["n"] == len(diffs) and (verdict(r["p_better"], r["p_worse"], r["n"]), r["caution"]) == ONE_SEED and r["wins"] == wins
    for key in ("std_diff", "ci_low", "ci_high", "p_better", "mde_80"):
        assert math.isnan(r[key]), key
    assert r["mean_diff"] == pytest.approx(mean, nan_ok=True) and r["prob_improvement"] == pytest.approx(prob, nan_ok=True)


def test_holm_caps_at_one_and_keeps_the_order_of_ties():
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([0.02, 0.02, 0.01]) == pytest.approx([0.04, 0.04, 0.03])
    assert holm([]) == []


def test_rows_come_sorted_by_model_and_segment_with_plain_means_and_caps():
    data = [(m, g, s, a, 3.0 - g / 10 + s / 100 + (a == "d") * (0.02 * s - 0.05) + (m == "a") / 7)
            for m in ("b", "a") for g in (2, 1, 0) for s in (1, 2, 3) for a in ("static:0", "d")]
    rows = compare_arms(frame(data), ["d"])
    assert [(r["model"], r["segment"]) for r in rows] == [(m, g) for m in ("a", "b") for g in (0, 1, 2)]
    plain = frame(data).groupby(["model", "segment", "arm"])["val_loss"].mean()
    for r in rows:
        assert r["cap"] == 1000 * (r["segment"] + 1) and r["replicates"] == [[1], [2], [3]]
        assert r["decay_mean"] == pytest.approx(plain[r["model"], r["segment"], "d"])
        assert r["static_mean"] == pytest.approx(plain[r["model"], r["segment"], "static:0"])


def test_a_segment_without_static_arms_is_skipped_and_the_next_is_kept():
    data = [("m", 0, s, "d", 3.0) for s in (1, 2)] + [("m", 1, s, a, 3.0 + (a == "d") * s / 10)
                                                      for s in (1, 2) for a in ("static:0", "d")]
    assert [r["segment"] for r in compare_arms(frame(data), ["d"])] == [1]


def test_a_calibrated_arm_meets_the_hand_decays_but_not_another_calibrated_arm():
    losses = {"static:0": 3.5, "hand": 3.0, "cal": 3.2, "cal2": 3.4}  # the hand decay beats both calibrated arms
    data = [("m", 0, s, a, v + s / 10 + (a != "hand") * s / 1000) for s in (1, 2, 3) for a, v in losses.items()]
    rows = compare_arms(frame(data), ["hand", "cal", "cal2"], ["cal", "cal2"])
    pairs = {(r["decay_arm"], r["static_arm"]): r for r in rows}
    assert sorted(pairs) == [("cal", "hand"), ("cal", "static:0"), ("cal2", "hand"), ("cal2", "static:0"),
                             ("hand", "static:0")]
    assert pairs["cal", "hand"]["verdict"] == "other decay better" and pairs["cal", "static:0"]["verdict"] == "decay better"
    assert [c["beaten_statics"] for c in claims(rows)] == [1, 1, 1]


def test_a_static_rate_seen_on_one_seed_blocks_the_claim_against_every_static():
    """The pair against static:0.1 has one seed, so no p-value: "beats every static" cannot hold,
    however clearly the decay beats static:0."""
    data = [("m", 0, s, a, 3.0 + s / 10 - (a == "d") * (0.5 + s / 1000)) for s in (1, 2, 3) for a in ("static:0", "d")]
    data.append(("m", 0, 1, "static:0.1", 3.5))
    rows = compare_arms(frame(data), ["d"])
    assert [r["holds"] for r in rows] == [True, False]
    [claim] = claims(rows)
    assert math.isnan(claim["p_iut"]) and claim["deciding_static"] == "static:0.1" and not claim["beats_every_static"]
    assert (claim["beaten_statics"], claim["statics"], claim["n"]) == (1, 2, 1)


@pytest.mark.parametrize("n, alpha", [(3, 0.05), (6, 0.05), (6, 0.05 / 3)])
def test_mde_80_is_the_difference_a_simulated_t_test_detects_four_times_in_five(n, alpha):
    """Independent of the noncentral t: draw 40,000 experiments of n normal differences with the
    true mean -mde and spread 1, and count how often scipy's one-sided t-test rejects."""
    effect = mde(n, 1.0, alpha)
    rng = np.random.default_rng(0)
    d = rng.normal(-effect, 1.0, size=(40_000, n))
    power = (stats.ttest_1samp(d, 0.0, axis=1, alternative="less").pvalue < alpha).mean()
    assert power == pytest.approx(0.8, abs=0.01)
    assert mde(n, 2.0, alpha) == pytest.approx(2 * effect)  # in units of the spread
    assert math.isnan(mde(1, 1.0)) and math.isnan(mde(3, 0.0))


def test_one_verdict_vocabulary_from_the_holm_adjusted_one_sided_tests():
    """Cap 0's unadjusted 95% interval excludes 0 (one-sided p 0.021), but across three caps its
    Holm-adjusted p is 0.062: 'no clear difference', and `holds` agrees with the verdict on every
    row (results.md once read such rows both ways)."""
    diffs = {0: (-0.10, -0.13, -0.06), 1: (-0.01, 0.02, -0.03), 2: (0.2, 0.21, 0.19)}
    data = [("m", g, s, a, 3.0 + (a == "d") * dv) for g, ds in diffs.items() for s, dv in zip((1, 2, 3), ds)
            for a in ("static:0", "d")]
    rows = compare_arms(frame(data), ["d"])
    assert rows[0]["ci_high"] < 0 and 0.05 < rows[0]["p_holm"] < 0.1
    for r in rows:
        assert r["holds"] == (r["verdict"] == "decay better") and r["holds"] == (r["p_holm"] < 0.05)
    assert [r["verdict"] for r in rows] == ["no clear difference", "no clear difference", "static better"]
    p = [stats.ttest_1samp(d, 0.0, alternative="less").pvalue for d in diffs.values()]
    assert [r["p_holm"] for r in rows] == pytest.approx(holm(p))


def test_comparison_on_a_constructed_study_matches_a_hand_computation(cache_dir, tmp_path):
    out = constructed_stream(cache_dir, tmp_path)
    rows = json.loads((out / "comparison.json").read_text())
    assert len(rows) == 2 * 1 * 2  # stages x decay arms x static arms
    for r in rows:
        d, s = VAL[r["segment"]]["d"], VAL[r["segment"]][r["static_arm"]]
        diffs = [a - b for a, b in zip(d, s)]
        mean, std, low, high = by_hand(diffs)
        assert (r["mean_diff"], r["std_diff"], r["ci_low"], r["ci_high"]) == pytest.approx((mean, std, low, high))
        assert r["n"] == 3 and r["wins"] == sum(x < 0 for x in diffs) and r["replicates"] == [[1, 0], [2, 0], [3, 0]]
        assert r["metric"] == "val_loss"  # trials without a test loss: a study from before the test split
        assert r["caution"] == "n=3: the t-interval is wide; treat it as indicative"
    best = {r["segment"]: r["static_arm"] for r in rows if r["best_static"]}
    assert best == {0: "static:0", 1: "static:0.1"}
    [last] = [r for r in rows if r["segment"] == 1 and r["best_static"]]
    assert last["verdict"] == "decay better" and last["ci_high"] < 0 and last["wins"] == 3
    [first] = [r for r in rows if r["segment"] == 0 and r["best_static"]]
    assert first["verdict"] == "static better" and first["wins"] == 0
    csv = pd.read_csv(out / "comparison.csv")
    assert list(csv["mean_diff"]) == pytest.approx([r["mean_diff"] for r in rows])
    note = optuna_note(out, "constructed")
    assert "decay better" in note and "n=3: the t-interval is wide" in note


def test_one_seed_gives_no_interval_and_says_so():
    r = paired([-0.1])
    assert r["n"] == 1 and math.isnan(r["ci_low"]) and verdict(r["p_better"], r["p_worse"], 1) == "no interval (one replicate)"
    assert "one replicate" in r["caution"]


def test_paired_statistics_and_claims_match_scipy_on_a_constructed_stream(cache_dir, tmp_path):
    out = constructed_stream(cache_dir, tmp_path)
    rows = json.loads((out / "comparison.json").read_text())
    for r in rows:
        d, s = np.array(VAL[r["segment"]]["d"]), np.array(VAL[r["segment"]][r["static_arm"]])
        test = stats.ttest_rel(d, s, alternative="less")
        low, high = stats.t.interval(0.95, len(d) - 1, loc=(d - s).mean(), scale=stats.sem(d - s))
        assert r["p_better"] == pytest.approx(test.pvalue) and (r["ci_low"], r["ci_high"]) == pytest.approx((low, high))
        assert r["prob_improvement"] == pytest.approx(np.mean(d < s)) and r["diffs"] == pytest.approx(list(d - s))
    for static in ("static:0", "static:0.1"):
        pair = sorted((r for r in rows if r["static_arm"] == static), key=lambda r: r["segment"])
        assert [r["p_holm"] for r in pair] == pytest.approx(hand_holm([r["p_better"] for r in pair]))
    found = json.loads((out / "claims.json").read_text())
    for c in found:
        pair = [r for r in rows if r["segment"] == c["segment"]]
        assert c["p_iut"] == pytest.approx(max(r["p_better"] for r in pair))
        d = np.array(VAL[c["segment"]]["d"])
        assert c["wins_against_all"] == sum(all(d[i] < VAL[c["segment"]][s][i] for s in ("static:0", "static:0.1"))
                                            for i in range(3))
    assert [c["p_iut_holm"] for c in found] == pytest.approx(hand_holm([c["p_iut"] for c in found]))
    # segment 1: the decay beats both statics on every seed, but with 3 seeds that is still evidence to weigh
    last = next(c for c in found if c["segment"] == 1)
    assert last["wins_against_all"] == 3 and last["beats_every_static"] == (last["p_iut_holm"] < 0.05)


def test_holm_and_a_calibrated_arm_against_the_hand_decays():
    adjusted = holm([0.01, 0.04, 0.03, float("nan")])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])  # NaN stays a float NaN
    frame = pd.DataFrame([{"model": "m", "segment": 0, "cap": 10, "seed": s, "arm": a, "val_loss": v}
                          for s in (1, 2, 3) for a, v in (("static:0", 3.0 + s / 10), ("hand", 2.9 + s / 10),
                                                           ("cal", 2.8 + s / 10 + (s == 2) / 100))])
    rows = compare_arms(frame, ["hand", "cal"], ["cal"])
    assert sorted((r["decay_arm"], r["static_arm"]) for r in rows) == [("cal", "hand"), ("cal", "static:0"),
                                                                     ("hand", "static:0")]
    [vs_hand] = [r for r in rows if r["static_arm"] == "hand"]
    assert not vs_hand["other_is_static"] and vs_hand["mean_diff"] == pytest.approx(-0.1 + 0.01 / 3)
    assert sorted(c["decay_arm"] for c in claims(rows)) == ["cal", "hand"]  # claims are against static rates only
    assert all(c["statics"] == 1 for c in claims(rows))


def test_a_seed_where_the_decay_ties_a_static_rate_is_not_a_win():
    """The same loss (a decay that never left the static rate) is no improvement."""
    frame = pd.DataFrame([{"model": "m", "segment": 0, "cap": 10, "seed": s, "arm": a, "val_loss": v}
                          for s in (1, 2, 3) for a, v in (("static:0", 3.0 + s / 10),
                                                           ("d", 3.0 + s / 10 - (s != 1) / 100))])
    [claim] = claims(compare_arms(frame, ["d"]))
    assert claim["wins_against_all"] == 2
