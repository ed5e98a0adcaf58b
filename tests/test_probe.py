"""The probe stage on studies/probe_smoke.toml, and a calibrated stream that follows its law."""

import json
import shutil

import optuna
import pytest

from dropout_decay.cli import main as cli
from dropout_decay.model.law import predict
from dropout_decay.sweep.storage import open_storage, sqlite_url

from conftest import TEST_VOCAB, TRAIN


def test_probe_smoke_finds_per_cap_optima_and_a_calibrated_stream_replays_without_it(cache_dir, tmp_path, capsys):
    probe_dir = tmp_path / "probe"
    # 15 passes and rates to 0.8: the test corpus overfits sooner than the default one that
    # probe_smoke is tuned for (scripts/check_shipped.py runs it as shipped), in half the time
    assert cli.main(["run", "probe_smoke", "--use-cached-data", "--cache-dir", str(cache_dir), "--passes", "15",
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

    stream = tmp_path / "stream"
    args = ["stream", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir), "--vocab-size",
            str(TEST_VOCAB), "--models", "winner=1x4x64", "--seeds", "1", "2", "--dropout-rates", "0", "0.2",
            "--decays", "d:0.3:0.1:cosine", f"cal:calibrated:{probe_dir / 'probe.json'}",
            "--stream-token-caps", "1500", "3000", "6000", "--stage-steps", "8", "--output-dir", str(stream), *TRAIN]
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
