"""The probe (analysis/probe.py): optima and law on loss tables whose answer is known, and the
probe stage on studies/probe_smoke.toml with a calibrated stream that follows its law."""

import json
import math
import shutil

import numpy as np
import optuna
import pandas as pd
import pytest

from dropout_decay.analysis.probe import analyse_probe, refine
from dropout_decay.cli import main as cli
from dropout_decay.model.law import predict
from dropout_decay.sweep.storage import open_storage, sqlite_url
from tests.conftest import TEST_VOCAB, TRAIN


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


def test_probe_smoke_finds_per_cap_optima_and_a_calibrated_stream_replays_without_it(cache_dir, tmp_path, capsys):
    probe_dir = tmp_path / "probe"
    # 15 passes and rates to 0.8: the test corpus overfits sooner than the default one that
    # probe_smoke is tuned for (scripts/check_shipped.py runs it as shipped), in half the time
    # eager throughout (--compile off): the replay below must be bitwise, and compiled training on
    # two threads is not bitwise reproducible (sweep/replay.py)
    assert cli.main(["run", "probe_smoke", "--use-cached-data", "--cache-dir", str(cache_dir), "--passes", "15",
                     "--compile", "off",
                     "--dropout-rates", "0", "0.1", "0.2", "0.4", "0.8", "--eval-batches", "2", "--eval-every", "8",
                     "--output-dir", str(probe_dir)]) == 0
    probe = json.loads((probe_dir / "probe.json").read_text())
    caps = probe["caps"]
    assert [c["cap"] for c in caps] == [1500, 3000, 6000] and all(c["n_seeds"] == 2 for c in caps)
    config = json.loads((probe_dir / "config.json").read_text())
    steps = sorted({m["step"] for m in map(json.loads, (probe_dir / "metrics.jsonl").read_text().splitlines())})
    assert steps == [-(-15 * cap // (8 * 32)) for cap in (1500, 3000, 6000)]  # 15 passes over each cap
    assert config["settings"]["passes"] == 15 and probe["difficulty"]["bytes_per_token"] > 1
    law = probe["law"]
    assert law["form"] in ("log-linear", "power"), law
    assert (probe_dir / "probe.csv").read_text().startswith("model,cap,parameters,tokens_per_param")
    # the probe is a map of one pass count: its cells, recomputed from metrics.jsonl with plain pandas
    cells = pd.read_csv(probe_dir / "map.csv")
    m = pd.read_json(probe_dir / "metrics.jsonl", lines=True)
    best = m.groupby(["cap", "dropout"])["val_loss"].mean().unstack().idxmin(axis=1)
    assert list(cells["unique_tokens"]) == [1500, 3000, 6000] and (cells["passes"] == 15).all()
    assert list(cells["p_star"]) == [best[c] for c in (1500, 3000, 6000)] == [c["best_p"] for c in caps]
    assert "reason" in json.loads((probe_dir / "map.json").read_text())["laws"]["first-order"]  # one y: no 2-variable law

    stream = tmp_path / "stream"
    args = ["stream", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir), "--vocab-size",
            str(TEST_VOCAB), "--models", "winner=1x4x64", "--seeds", "1", "2", "--dropout-rates", "0", "0.2",
            "--decays", "d:0.3:0.1:cosine", f"cal:calibrated:{probe_dir / 'probe.json'}",
            "--stream-token-caps", "1500", "3000", "6000", "--stage-steps", "8", "--output-dir", str(stream), "--compile",
            "off", *TRAIN]
    assert cli.main(args) == 0
    config = json.loads((stream / "config.json").read_text())
    stored = config["settings"]["calibrations"]["cal"]
    assert stored["params"] == law["params"] and stored["source"] == str(probe_dir / "probe.json")
    params = config["models"][0]["parameters"]
    metrics = [json.loads(line) for line in (stream / "metrics.jsonl").read_text().splitlines()]
    low, high = law["p_range"]
    for m in (m for m in metrics if m["arm"] == "cal"):
        assert m["dropout_in_force"] == pytest.approx(min(max(predict(law, m["cap"] / params), low), high))
    rows = json.loads((stream / "comparison.json").read_text())
    assert {(r["decay_arm"], r["static_arm"]) for r in rows if r["decay_arm"] == "cal"} == {
        ("cal", "static:0"), ("cal", "static:0.2"), ("cal", "d")}
    shutil.rmtree(probe_dir)  # the law travels with the stream's settings
    capsys.readouterr()
    assert cli.main(["replay", str(stream), "--arms", "cal"]) == 0
    assert "2/2 points bitwise identical" in capsys.readouterr().out
    storage = open_storage(sqlite_url(stream))
    names = sorted(optuna.get_all_study_names(storage))
    assert len(names) == 2 and names[1] == f"{names[0]}-replay-1"
    assert len(optuna.load_study(study_name=names[0], storage=storage).trials) == 2 * 4  # the original, untouched
