"""Declared claims (design/declared.py): stored before training, judged as one family, a bad one
refused before anything trains."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dropout_decay.cli import main as cli
from tests.conftest import TEST_VOCAB, load

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


def test_declared_claims_are_stored_before_training_and_judged_as_one_family(evidence_stream):
    primary = json.loads((evidence_stream / "primary.json").read_text())
    assert [r["claim"] for r in primary] == ["cos beats every static at last", "cos helps more as data grows at last",
                                             "early beats static:0 at 6000"]
    claims = {c["decay_arm"]: c for c in json.loads((evidence_stream / "claims.json").read_text()) if c["segment"] == 2}
    interaction = {r["decay_arm"]: r for r in json.loads((evidence_stream / "interaction.json").read_text()) if r["segment"] == 2}
    pairs = scipy_pairs(metrics(evidence_stream))
    test = pairs[1][2]
    p = [claims["cos"]["p_iut"], interaction["cos"]["p_better"],
         stats.ttest_1samp(test["early"] - test["static:0"], 0.0, alternative="less").pvalue]
    assert [r["p"] for r in primary] == pytest.approx(p)
    order = np.argsort(p, kind="stable")
    holm = [min(1.0, max((3 - i) * np.sort(p)[i] for i in range(k + 1))) for k in range(3)]
    assert [primary[j]["p_holm"] for j in order] == pytest.approx(holm)
    assert all(r["holds"] == (r["p_holm"] < 0.05) and r["declared"] == "primary" for r in primary)
    assert primary[2]["cap"] == 6000 and all(math.isfinite(r["mde_80"]) for r in primary)
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
])
def test_a_bad_claim_is_refused_before_anything_trains(cache_dir, tmp_path, capsys, claim, message):
    text = open(stream_file(tmp_path, cache_dir, claims=False)).read() + f'[claims]\nprimary = ["{claim}"]\n'
    (tmp_path / "bad.toml").write_text(text)
    assert cli.main(["run", str(tmp_path / "bad.toml"), "--output-dir", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run" / "study.db").exists()
