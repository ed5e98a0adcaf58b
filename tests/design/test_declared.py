"""Declared claims (design/declared.py): stored before training, judged as one family, a bad one
refused before anything trains."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from dropout_decay.cli import main as cli
from tests.conftest import load, metrics, scipy_pairs, stream_file


def test_declared_claims_are_stored_before_training_and_judged_as_one_family(evidence_stream):
    primary = json.loads((evidence_stream / "primary.json").read_text())
    assert [r["claim"] for r in primary] == ["cos beats every static at last", "cos helps more as data grows at last",
                                             "early beats static:0 at 6000", "cos beats every static at trajectory"]
    claims = {c["decay_arm"]: c for c in json.loads((evidence_stream / "claims.json").read_text()) if c["segment"] == 2}
    interaction = {r["decay_arm"]: r for r in json.loads((evidence_stream / "interaction.json").read_text()) if r["segment"] == 2}
    m = metrics(evidence_stream)
    pairs = scipy_pairs(m)
    test = pairs[1][2]
    # the trajectory, by hand: each replicate's mean over the three caps; best static on mean validation
    growing = m[~m["arm"].str.endswith("@fixed")]
    mean_val = growing.pivot_table(index=["seed", "order_seed"], columns="arm", values="val_loss", aggfunc="mean")
    mean_test = growing.pivot_table(index=["seed", "order_seed"], columns="arm", values="test_loss", aggfunc="mean")
    statics = [a for a in mean_val.columns if a.startswith("static:")]
    p_trajectory = max(stats.ttest_1samp(mean_test["cos"] - mean_test[s], 0.0, alternative="less").pvalue for s in statics)
    p = [claims["cos"]["p_iut"], interaction["cos"]["p_better"],
         stats.ttest_1samp(test["early"] - test["static:0"], 0.0, alternative="less").pvalue, p_trajectory]
    assert [r["p"] for r in primary] == pytest.approx(p)
    order = np.argsort(p, kind="stable")
    holm = [min(1.0, max((4 - i) * np.sort(p)[i] for i in range(k + 1))) for k in range(4)]
    assert [primary[j]["p_holm"] for j in order] == pytest.approx(holm)
    assert all(r["holds"] == (r["p_holm"] < 0.05) and r["declared"] == "primary" for r in primary)
    assert primary[2]["cap"] == 6000 and primary[3]["cap"] == "trajectory" and all(math.isfinite(r["mde_80"]) for r in primary)
    config = load(evidence_stream).user_attrs["config"]  # stored as the study was created, before any trial
    assert config["settings"]["claims"]["primary"] == [r["claim"] for r in primary]
    from dataclasses import replace

    from dropout_decay.design.settings import Settings
    stored = Settings.from_dict(config["settings"])
    other = replace(stored, claims={"primary": ["early beats every static at last"]})
    data = {"any": "data"}
    assert stored.fingerprint(data) != other.fingerprint(data)  # other claims are another experiment, never this one
    report = (evidence_stream / "report.html").read_text()
    assert report.index("Primary claims, declared before the run") < report.index("Exploratory")


@pytest.mark.parametrize("claim, message", [
    ("cos beats everything", "is not one of"),
    ("nope beats every static at last", "the stream has no arm 'nope'"),
    ("cos beats every static at 5000", "5,000 is not one of the stream's caps"),
    ("cos beats every static at mean", "CAP: last, trajectory or a token count"),
])
def test_a_bad_claim_is_refused_before_anything_trains(cache_dir, tmp_path, capsys, claim, message):
    text = open(stream_file(tmp_path, cache_dir, claims=False)).read() + f'[claims]\nprimary = ["{claim}"]\n'
    (tmp_path / "bad.toml").write_text(text)
    assert cli.main(["run", str(tmp_path / "bad.toml"), "--output-dir", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run" / "study.db").exists()
