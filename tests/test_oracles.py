"""The artefacts recomputed by independent means: the summary and the model selection with plain
pandas from metrics.jsonl, the paired statistics and claims with scipy and a hand-written Holm,
the probe's optimum and law on a loss table whose answer is known. Plus selection's edge cases."""

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dropout_decay.cli import main as cli
from dropout_decay.report.artefacts import export
from dropout_decay.analysis.comparison import claims, compare_arms, holm
from dropout_decay.analysis.probe import analyse_probe, refine
from dropout_decay.report.page import PLOTLY_JS
from dropout_decay.analysis.selection import select_curve

from conftest import VAL, constructed_stream, load, tiny


def test_summary_and_selection_match_plain_pandas_on_a_real_screen(cache_dir, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out, "--seeds", "1", "2", "3")]) == 0
    metrics = pd.read_json(out / "metrics.jsonl", lines=True)
    assert len(metrics) == 9 and not metrics.duplicated(["seed", "dropout"]).any()
    expected = metrics.groupby("dropout")["val_loss"].agg(["mean", "std", "count"])
    summary = pd.read_csv(out / "summary.csv").set_index("dropout")
    assert np.allclose(summary["val_loss_mean"], expected["mean"]) and np.allclose(summary["val_loss_std"], expected["std"])
    assert list(summary["n"]) == list(expected["count"])
    gaps = metrics.groupby("dropout")["gap"].mean()
    assert np.allclose(summary["gap_mean"], gaps)
    assert np.allclose(metrics["gap"], metrics["val_loss"] - metrics["train_loss"], atol=1e-9)
    [sel] = json.loads((out / "model_selection.json").read_text())
    means = expected["mean"]
    assert sel["best_p"] == means.idxmin() and sel["best_val_loss"] == pytest.approx(means.min())
    assert sel["plateau"] == [p for p, m in means.items() if m <= means.min() + 0.01]
    assert sel["seed_std"] == pytest.approx(math.sqrt((expected["std"] ** 2).mean()))
    dip = min(means.iloc[0], means.iloc[-1]) - means.min()
    assert sel["dip_depth"] == pytest.approx(dip)
    assert set(summary["device"]) == {"cpu"} and not summary["mps_compliant"].any()  # off-MPS, and says so
    assert set(metrics["stage"]) == {"screen"}
    assert "quadratic_fit" not in pd.read_csv(out / "model_selection.csv").columns  # flattened into quad_*


def test_export_json_names_the_storage_state_the_set_describes(cache_dir, tmp_path):
    """export.json's digest recomputed from the trials, and a second export into another
    folder with a shared root: plotly.js lives in the root, the report points there."""
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out, "--seeds", "1")]) == 0
    study = load(out)
    digest = hashlib.sha256("".join(f"{t.number}:{t.state.name}:{t.value!r}\n" for t in
                                    sorted(study.get_trials(), key=lambda t: t.number)).encode()).hexdigest()[:16]
    stamp = json.loads((out / "export.json").read_text())
    assert (stamp["study"], stamp["storage_state"]) == (study.study_name, digest)
    assert stamp["files"]["summary.csv"] == hashlib.sha256((out / "summary.csv").read_bytes()).hexdigest()
    written = export(study, tmp_path / "stage", root=tmp_path / "root")
    assert written["export.json"].is_file() and all(f.is_file() for f in written.values())
    assert (tmp_path / "root" / PLOTLY_JS).is_file() and not (tmp_path / "stage" / PLOTLY_JS).exists()
    assert f'src="../root/{PLOTLY_JS}"' in (tmp_path / "stage" / "report.html").read_text()


def hand_holm(p):
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


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


def curve(means, std, seeds):
    offsets = [-1.0, 0.0, 1.0][:seeds] if seeds > 1 else [0.0]
    return pd.DataFrame([{"dropout": p, "seed": i, "val_loss": m + o * std}
                         for p, m in zip([0.0, 0.1, 0.2, 0.3, 0.5], means) for i, o in enumerate(offsets)])


@pytest.mark.parametrize("seeds", [1, 3])
def test_selection_edges_and_boundaries(seeds):
    top = select_curve(curve([4.2, 4.1, 4.0, 3.9, 3.8], 0.01, seeds), delta=0.01)
    assert (top["interior"], top["candidate"], top["best_p"]) == (False, False, 0.5)
    assert top["verdict"].startswith("optimum at the largest rate swept")
    assert top["quadratic_fit"]["points"] == [0.2, 0.3, 0.5]  # at the top edge: the three highest rates
    zero = select_curve(curve([3.8, 3.9, 4.0, 4.1, 4.2], 0.01, seeds), delta=0.01)
    assert (zero["interior"], zero["nonzero"], zero["candidate"]) == (False, False, False)
    exact = [4.0, 3.75, 3.5, 3.75, 4.5]  # binary-exact, so the boundary is exactly on delta
    edge = select_curve(curve(exact, 0.125, seeds), delta=0.25)
    assert edge["plateau"] == [0.1, 0.2, 0.3]  # 3.75 is exactly 0.25 above 3.5: inclusive
    tight = select_curve(curve(exact, 0.125, seeds), delta=0.0)
    assert tight["plateau"] == [0.2] and tight["plateau_low"] == tight["plateau_high"] == 0.2
    assert edge["candidate"] and edge["interior"] and edge["nonzero"]
    assert edge["deeper_than_noise"] is (None if seeds == 1 else True)
    assert edge["verdict"] == ("interior nonzero optimum at p=0.2 (dip 0.5000; seed noise unknown with 1 seed)"
                               if seeds == 1 else "interior nonzero optimum at p=0.2 (dip 0.5000 = 4.0 seed std)")
    assert edge["std_val_loss"] == ([None] * 5 if seeds == 1 else pytest.approx([0.125] * 5))  # JSON-safe, no NaN
    second = select_curve(curve([4.2, 4.1, 4.0, 3.9, 4.3], 0.01, seeds), delta=0.01)
    assert (second["best_p"], second["interior"]) == (0.3, True)  # one below the top is still inside
    fit = edge["quadratic_fit"]  # through (0.1, 3.75), (0.2, 3.5), (0.3, 3.75): 25 (p - 0.2)^2 + 3.5
    assert (fit["a"], fit["b"], fit["c"], fit["vertex_p"]) == pytest.approx((25.0, -10.0, 4.5, 0.2))
    assert fit["points"] == [0.1, 0.2, 0.3]
    assert edge["dip_over_std"] == (None if seeds == 1 else pytest.approx(4.0))
    mirror = select_curve(curve(exact[::-1], 0.125, seeds), delta=0.25)  # now the high end is the shallow side
    assert (mirror["rise_to_lowest_rate"], mirror["rise_to_highest_rate"], mirror["dip_depth"]) == (1.0, 0.5, 0.5)
    shallow = select_curve(curve([4.0, 3.755, 3.75, 3.755, 4.5], 0.01, seeds), delta=0.01)["quadratic_fit"]
    assert (shallow["a"], shallow["vertex_p"]) == pytest.approx((0.5, 0.2))  # a curvature below 1 still has a vertex
    two = select_curve(curve([4.0, 3.9], 0.01, seeds).query("dropout < 0.15"), delta=0.01)
    assert two["quadratic_fit"] == {"a": None, "b": None, "c": None, "vertex_p": None, "points": [0.0, 0.1]}


def test_a_dip_exactly_one_seed_std_deep_is_not_deeper_than_noise():
    level = select_curve(curve([4.0, 3.75, 3.5, 3.75, 4.5], 0.5, 3), delta=0.01)  # binary-exact: dip = std = 0.5
    assert (level["dip_depth"], level["seed_std"]) == (0.5, 0.5)
    assert level["deeper_than_noise"] is False and not level["candidate"]


def test_noise_decides_a_shallow_dip_with_three_seeds():
    shallow = select_curve(curve([4.000, 3.995, 3.990, 3.995, 4.000], 0.02, 3), delta=0.01)
    assert shallow["deeper_than_noise"] is False and not shallow["candidate"]
    assert "within seed noise" in shallow["verdict"]


def probe_table(vertices, caps=(1000, 2000, 4000), seeds=3, parameters=1000):
    """Val loss = 4 + 8 (p - p*)^2 + seed offset: parabolas whose vertex p* is known per cap."""
    rates = [0.0, 0.05, 0.1, 0.2, 0.3, 0.45]
    rows = [{"model": "m", "cap": cap, "seed": s, "dropout": p, "val_loss": 4 + 8 * (p - v) ** 2 + 0.001 * s,
             "gap": 1.0 - p} for cap, v in zip(caps, vertices) for s in range(seeds) for p in rates]
    config = {"models": [{"label": "m", "parameters": parameters}], "data": {"manifest": {}}, "settings": {"passes": 4}}
    return pd.DataFrame(rows), config


def test_probe_optima_and_law_on_a_table_with_known_vertices():
    vertices = [0.25, 0.17, 0.09]  # falling by 0.08 per doubling of the cap
    frame, config = probe_table(vertices)
    probe = analyse_probe(frame, config)
    for cap, v in zip(probe["caps"], vertices):
        assert cap["p_star"] == pytest.approx(v, abs=1e-6) and cap["scale"] == "p" and cap["interior"]
        assert cap["p_star_low"] == pytest.approx(v, abs=1e-6) == cap["p_star_high"]  # seeds differ by a constant
        assert cap["tokens_per_param"] == cap["cap"] / 1000
    law = probe["law"]
    assert law["form"] == "log-linear" and law["falls_with_data"]
    assert law["params"]["b"] == pytest.approx(0.08 / math.log(2), rel=1e-4)
    assert law["params"]["a"] - law["params"]["b"] * math.log(1.0) == pytest.approx(0.25, abs=1e-4)
    assert law["candidates"][0]["residuals"] == pytest.approx([0, 0, 0], abs=1e-5)


def test_a_probe_without_an_interior_optimum_gives_no_law_and_says_why():
    frame, config = probe_table([0.0, -0.1, -0.2])  # every curve rises from p = 0
    probe = analyse_probe(frame, config)
    assert all(c["best_p"] == 0.0 and c["edge"] for c in probe["caps"])
    assert probe["law"]["form"] is None and "no cap has an interior optimum" in probe["law"]["reason"]
    frame, config = probe_table([0.5, 0.6, 0.1])  # two caps above the sweep: one usable point is too few
    law = analyse_probe(frame, config)["law"]
    assert law["form"] is None and "needs at least 3" in law["reason"] and len(law["excluded"]) == 2


def test_refine_prefers_the_square_root_scale_when_it_fits_better():
    rates = np.array([0.0, 0.02, 0.05, 0.1, 0.2, 0.3])
    means = 4 + 3 * (np.sqrt(rates) - np.sqrt(0.05)) ** 2
    r = refine(rates, means)
    assert r["scale"] == "sqrt_p" and r["p_star"] == pytest.approx(0.05, abs=1e-9)
