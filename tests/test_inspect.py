"""Inspection: the paired comparison, the report, replay and the dashboard, all read from storage."""

import json
import math
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest

from dropout_decay.cli import main as cli
from dropout_decay.data.cache import load_cache
from dropout_decay.analysis.comparison import paired, verdict
from dropout_decay.model.gpt import parse_model_spec
from dropout_decay.sweep.provenance import data_identity
from dropout_decay.design.settings import Settings
from dropout_decay.model.schedules import parse_decay
from dropout_decay.report.notes import SEED_IMPORTANCE
from dropout_decay.training.trainer import PointRun, Segment, TrainConfig, train
from dropout_decay.sweep.storage import open_storage, sqlite_url

from conftest import ARMS, T_975_2DF, TEST_VOCAB, TRAIN, VAL, constructed_stream, default_ctrl_c, load, tiny

ROOT = Path(__file__).resolve().parents[1]
def by_hand(diffs):
    n = len(diffs)
    mean = sum(diffs) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = T_975_2DF * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


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


def test_a_study_from_before_0_2_exports_the_same_artefacts(cache_dir, tmp_path):
    """Its trials name segments "stages"; the export reads them as today's segments."""
    today = constructed_stream(cache_dir, tmp_path / "today")
    old = constructed_stream(cache_dir, tmp_path / "old", legacy=True)
    for name in ("metrics.jsonl", "summary.csv", "comparison.csv", "claims.csv"):
        assert (old / name).read_text() == (today / name).read_text(), name
    rows = json.loads((old / "comparison.json").read_text())
    assert all(r["device"] == "cpu" and r["mps_compliant"] is False for r in rows)  # every row says where it ran


def test_one_seed_gives_no_interval_and_says_so():
    r = paired([-0.1])
    assert r["n"] == 1 and math.isnan(r["ci_low"]) and verdict(r["p_better"], r["p_worse"], 1) == "no interval (one replicate)"
    assert "one replicate" in r["caution"]


def optuna_note(run: Path, name: str) -> str:
    from optuna_dashboard import get_note

    return get_note(optuna.load_study(study_name=name, storage=open_storage(sqlite_url(run))))


def test_report_is_self_contained_with_a_trace_for_every_arm_and_model(cache_dir, tmp_path):
    folder = constructed_stream(cache_dir, tmp_path / "stream")
    stream = folder.joinpath("report.html").read_text()
    assert '<script src="plotly.min.js">' in stream and "plotly.js" not in stream.lower()  # one copy beside it
    assert (folder / "plotly.min.js").stat().st_size > 3_000_000  # opens offline
    for arm in ARMS:
        assert f'"name":"{arm}"' in stream
    assert "best static rate, paired by replicate" in stream and "decay arms against the best static rate" in stream
    out = tmp_path / "screen"
    assert cli.main(["screen", *tiny(cache_dir, out), "--models", "a=1x2x32", "b=1x4x32"]) == 0
    screen = (out / "report.html").read_text()
    for model in ("a", "b"):
        assert f'"name":"{model} mean"' in screen
    assert screen.count('"name":"optimum"') == 2 and screen.count('"name":"seed 1"') == 2


def test_replay_of_a_finished_tiny_stream_gives_zero_deltas(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["stream", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir),
                     "--vocab-size", str(TEST_VOCAB), "--models", "winner=1x2x32", "--seeds", "1", "2",
                     "--dropout-rates", "0", "0.1", "--decays", "d:0.3:0.1:linear", "--stream-token-caps", "2000",
                     "4000", "--stage-steps", "15", "--output-dir", str(out), *TRAIN]) == 0
    original = load(out).study_name
    # an independent path to the same number: the trainer called directly, no Optuna, no storage
    cfg = TrainConfig(batch_size=4, seq_len=32, eval_batches=2, eval_every=15, log_every=10)
    direct = train(PointRun(parse_model_spec("1x2x32"), parse_decay("d:0.3:0.1:linear"), [Segment(2000, 15), Segment(4000, 15)],
                            cfg, seed=2), load_cache(cache_dir, TEST_VOCAB))
    [stored] = [t for t in load(out).trials if t.params == {"model": "winner", "seed": 2, "arm": "d"}]
    assert stored.value == direct[-1]["val_loss"] and stored.user_attrs["segments"] == direct
    assert cli.main(["replay", str(out)]) == 0
    assert "6/6 points bitwise identical, largest |delta val loss| 0" in capsys.readouterr().out
    rows = json.loads((out / f"{original}-replay-1" / "replay.json").read_text())
    assert len(rows) == 6 and all(r["identical"] and r["delta_val_loss"] == 0.0 for r in rows)
    # a filtered replay: one seed, one arm; the original stays the default study of the folder
    assert cli.main(["replay", str(out), "--seeds", "2", "--arms", "d"]) == 0
    [row] = json.loads((out / f"{original}-replay-2" / "replay.json").read_text())
    assert (row["seed"], row["arm"], row["identical"]) == (2, "d", True)
    assert cli.main(["export", str(out)]) == 0 and not (out / "replay.json").exists()
    storage = open_storage(sqlite_url(out))
    assert sorted(optuna.study.get_all_study_names(storage)) == [original, f"{original}-replay-1", f"{original}-replay-2"]
    note = optuna_note(out, f"{original}-replay-1")
    assert "6 of 6 replayed points are bitwise identical" in note
    verdict = optuna_note(out, original).split("\n\n## Replay")[0].removesuffix(f"\n\n{SEED_IMPORTANCE}")
    assert note.startswith(verdict) and verdict.startswith("## stream: does decaying dropout beat")  # then the replay


def test_a_study_stored_before_mask_forms_keeps_form_1_on_replay_and_its_fingerprint(cache_dir, tmp_path, capsys):
    """0.2 drew masks in form 1 and stored no `dropout_masks`. Such a study must replay bitwise
    (so in form 1, not today's default), and the committed results' fingerprints must still hold."""
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out), "--dropout-masks", "1"]) == 0
    study = load(out)
    config = study.user_attrs["config"]
    del config["settings"]["train"]["dropout_masks"]  # as 0.2 stored it
    study.set_user_attr("config", config)
    capsys.readouterr()
    assert cli.main(["replay", str(out)]) == 0
    assert "6/6 points bitwise identical, largest |delta val loss| 0" in capsys.readouterr().out
    legacy = 0
    for path in sorted((ROOT / "docs" / "results").glob("*/*/config.json")):
        stored = json.loads(path.read_text())
        settings = Settings.from_dict(stored["settings"])
        if "dropout_masks" not in stored["settings"]["train"]:  # made by 0.2: form 1
            legacy += 1
            assert settings.train.dropout_masks == 1
        else:  # made since: the form it stored (the seed scale model: 2, today's default)
            assert settings.train.dropout_masks == stored["settings"]["train"]["dropout_masks"]
        assert settings.fingerprint(data_identity(SimpleNamespace(manifest=stored["data"]["manifest"]))) == stored["fingerprint"]
    assert legacy >= 6  # cpu_workflow's four stages and the two follow-up streams


def test_replay_refuses_what_the_grid_does_not_hold(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    capsys.readouterr()
    assert cli.main(["replay", str(out), "--seeds", "7"]) == 2
    assert capsys.readouterr().err.strip() == "error: --seeds 7 not in the stored grid"


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_dashboard_serves_studies_trials_and_the_verdict_note_over_http(cache_dir, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "dropout_decay.study", "dashboard", str(out), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c)
    try:
        assert f"http://127.0.0.1:{port}/dashboard/" in proc.stdout.readline()
        deadline = time.time() + 60
        while True:
            try:
                studies = get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.2)
        [study] = studies
        assert study["study_name"] == load(out).study_name
        detail = get_json(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}?after=0")
        assert len(detail["trials"]) == 6
        trial = detail["trials"][0]
        assert {p["name"] for p in trial["params"]} == {"model", "seed", "dropout", "tokens"}
        assert {"train_loss", "val_loss", "gap"} <= {a["key"] for a in trial["user_attrs"]}
        assert [v["step"] for v in trial["intermediate_values"]] == [15, 30]  # learning curve
        assert "where does validation loss bottom out in p?" in detail["note"]["body"]
        assert "| 1x2x32 |" in detail["note"]["body"] and "(1x2x32)" not in detail["note"]["body"]  # named once
        assert detail["note"]["body"].endswith(SEED_IMPORTANCE)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
