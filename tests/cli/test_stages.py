"""The stage commands (cli/stages.py) end to end: real Optuna studies on real SQLite files, tiny
models on CPU; the seed's commands verbatim, kills, Ctrl-C, NaN points, dry runs, order seeds."""

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from dropout_decay.cli import main as cli
from dropout_decay.model.gpt import GPT
from tests.conftest import (
    TEST_VOCAB,
    TRAIN,
    default_ctrl_c,
    kill_when,
    load,
    metrics,
    mid_grid,
    patience,
    points,
    tiny,
)

ROOT = Path(__file__).resolve().parents[2]


def run_experiments():
    spec = importlib.util.spec_from_file_location("run_experiments", ROOT / "scripts" / "run_experiments.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


SEED_FLAGS = ["--use-cached-data", "--cache-dir", ".cache/dropout_decay"]


RATES = ["--dropout-rates", "0.0", "0.02", "0.05", "0.08", "0.10", "0.14", "0.20", "0.30", "0.50"]


def test_order_seeds_are_replicates_whose_losses_differ(evidence_stream):
    m = metrics(evidence_stream)
    assert set(m["order_seed"]) == {0, 1} and m["test_loss"].notna().all() and m["val_loss"].notna().all()
    a = m[(m["arm"] == "static:0") & (m["segment"] == 0)].set_index(["seed", "order_seed"])["train_loss"]
    assert a[(1, 0)] != a[(1, 1)] and a[(2, 0)] != a[(2, 1)]


def test_screen_runs_every_point_once_and_rerun_trains_nothing(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    study = load(out)
    done = points(study)
    assert len(done) == 6 == len(set(done)) == len(study.trials)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 6 and all(not m["mps_compliant"] and m["device"] == "cpu" for m in metrics)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["dropout"]) == [0.0, 0.1, 0.3] and set(summary["n"]) == {2}
    one = summary.iloc[1]
    vals = [m["val_loss"] for m in metrics if m["dropout"] == 0.1]
    assert one["val_loss_mean"] == pytest.approx(sum(vals) / 2)
    assert one["val_loss_std"] == pytest.approx(abs(vals[0] - vals[1]) / 2**0.5)
    [sel] = json.loads((out / "model_selection.json").read_text())
    assert sel["n_seeds"] == 2 and sel["best_val_loss"] == pytest.approx(min(summary["val_loss_mean"]))
    config = json.loads((out / "config.json").read_text())
    assert config["compliance"] == {"device": "cpu", "mps_compliant": False,
                                    "note": "NOT an MPS run: device cpu chosen explicitly"}
    assert config["grid_size"] == 6 and "Karpathy" in config["attribution"]
    # learning curves are intermediate values; metrics are user attrs
    t = study.trials[0]
    assert sorted(t.intermediate_values) == [15, 30] and t.user_attrs["val_loss"] == t.value
    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in trace} == {"train", "eval"} and len(trace) == 6 * 5
    # the same command again resumes the finished study: nothing is retrained
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    assert len(load(out).trials) == 6


def test_sigkill_mid_grid_then_resume_completes_each_point_once(cache_dir, tmp_path):
    out = tmp_path / "run"
    args = tiny(cache_dir, out, "--steps", "300")
    pid = kill_when(["screen", *args], lambda: mid_grid(out / "study.db"))
    assert cli.main(["screen", *args]) == 0
    study = load(out)
    done = points(study)
    assert len(done) == 6 == len(set(done))
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and failed[0].user_attrs["fail_reason"] == f"worker lost (pid {pid} died)"
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == failed[0].number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    # the exported artefacts hold every point once, the retried one too, never the failed attempt
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted((m["seed"], m["dropout"]) for m in metrics) == sorted(
        (s, p) for s in (1, 2) for p in (0.0, 0.1, 0.3))
    assert failed[0].number not in {m["trial"] for m in metrics} and retry[0].number in {m["trial"] for m in metrics}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["n"]) == [2, 2, 2]
    [sel] = json.loads((out / "model_selection.json").read_text())
    assert sel["n_seeds"] == 2 and len(sel["rates"]) == 3


def test_ctrl_c_marks_the_point_interrupted_exits_130_and_resumes(cache_dir, tmp_path):
    out = tmp_path / "run"
    args = tiny(cache_dir, out, "--steps", "300")
    proc = subprocess.Popen([sys.executable, "-m", "dropout_decay.study", "screen", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c)
    deadline = time.time() + patience(300)
    while not mid_grid(out / "study.db"):
        assert proc.poll() is None and time.time() < deadline, "the worker never got mid-grid"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=patience(120))
    assert proc.returncode == 130 and "Traceback" not in err and "rerun the same command to resume" in err
    study = load(out)
    [failed] = study.get_trials(states=(TrialState.FAIL,))
    assert failed.user_attrs["fail_reason"] == "interrupted"
    assert len(json.loads((out / "config.json").read_text())["grid"]["dropout"]) == 3
    assert (out / "metrics.jsonl").read_text().count("\n") == len(points(study)) >= 1  # flushed
    assert cli.main(["resume", str(out)]) == 0
    study = load(out)
    assert len(points(study)) == 6 == len(set(points(study)))
    assert [t.user_attrs.get("retry_reason") for t in study.trials if "retry_of" in t.user_attrs] == [
        "resume after: interrupted"]


def test_nan_point_fails_with_reason_and_the_rest_complete(cache_dir, tmp_path, monkeypatch, capsys):
    set_dropout = GPT.set_dropout

    def poisoned(self, p):
        set_dropout(self, p)
        if p == 0.3:
            self.lm_head.weight.data.fill_(float("nan"))

    monkeypatch.setattr(GPT, "set_dropout", poisoned)
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 1  # loud: the run did not do what was asked
    study = load(out)
    assert len(points(study)) == 4
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert sorted(t.params["seed"] for t in failed) == [1, 2] and {t.params["dropout"] for t in failed} == {0.3}
    assert all(t.user_attrs["fail_reason"] == "diverged: non-finite training loss (nan) at step 10" for t in failed)
    err = capsys.readouterr().err
    first = min(t.number for t in failed)
    closing = [line for line in err.splitlines() if line.startswith("failed: ")]
    point = " ".join(f"{k}={v}" for k, v in study.trials[first].params.items())
    assert closing == [f"failed: 2 point(s), first trial {first} ({point}): diverged: non-finite training loss (nan) at "
                       "step 10; try a lower --lr, then rerun with --retry-failed"], err
    assert "Traceback" not in err and (out / "summary.csv").is_file()  # the finished points are written all the same
    # a deterministic failure is not retried on resume, only on request
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 1
    assert len(load(out).trials) == 6
    assert cli.main(["status", str(out)]) == 0
    assert "failed 2" in capsys.readouterr().out
    assert cli.main(["screen", *tiny(cache_dir, out), "--retry-failed"]) == 1
    assert len(load(out).trials) == 8


def test_the_same_command_without_output_dir_resumes_the_previous_folder(cache_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ lands here
    args = [a for a in tiny(cache_dir, tmp_path / "unused") if a not in ("--output-dir", str(tmp_path / "unused"))]
    assert cli.main(["screen", *args]) == 0
    [first] = list((tmp_path / "runs").iterdir())
    stamp = (first / "study.db").stat().st_mtime_ns
    assert cli.main(["screen", *args]) == 0
    assert list((tmp_path / "runs").iterdir()) == [first]  # no second folder
    assert len(load(first).trials) == 6  # nothing trained twice
    assert cli.main(["screen", *args, "--steps", "31"]) == 0  # another experiment: a new folder
    assert len(list((tmp_path / "runs").iterdir())) == 2 and (first / "study.db").stat().st_mtime_ns >= stamp


def test_seed_commands_run_verbatim_with_cpu_and_tiny_sizes(cache_dir, tmp_path):
    main = run_experiments()
    small = ["--device", "cpu", "--cache-dir", str(cache_dir), "--vocab-size", str(TEST_VOCAB), *TRAIN]
    screen = ["--mode", "screen_static", *SEED_FLAGS, "--models", "8x8x256", "12x8x384", "16x8x384",
              "--seeds", "1", "2", "--token-limits", "5000000", *RATES, "--steps", "2000", "--eval-batches", "64"]
    assert main([*screen, *small, "--models", "1x2x32", "--token-limits", "5000", "--steps", "6",
                 "--dropout-rates", "0", "0.1", "0.3", "--output-dir", str(tmp_path / "s")]) == 0
    confirm = ["--mode", "confirm_static", *SEED_FLAGS, "--models", "winner=12x8x384", "--seeds", "1", "2", "3",
               "--token-limits", "5000000", *RATES, "--steps", "2000", "--eval-batches", "64"]
    assert main([*confirm, *small, "--models", "winner=1x2x32", "--token-limits", "5000", "--steps", "4",
                 "--output-dir", str(tmp_path / "c")]) == 0
    stream = ["--mode", "locked_stream", *SEED_FLAGS, "--models", "winner=12x8x384", "--seeds", "1", "2", "3",
              "--stream-token-caps", "5000000", "10000000", "20000000", "40000000",
              "--dropout-rates", "0.0", "0.10", "0.14", "0.20",
              "--decays", "decay_030_to_014:0.30:0.14:cosine", "decay_020_to_010:0.20:0.10:cosine",
              "--stage-steps", "1000", "--eval-batches", "64"]
    assert main([*stream, *small, "--models", "winner=1x2x32", "--stream-token-caps", "2000", "4000",
                 "--stage-steps", "3", "--output-dir", str(tmp_path / "t")]) == 0
    confirm_sel = json.loads((tmp_path / "c" / "model_selection.json").read_text())
    assert confirm_sel[0]["n_seeds"] == 3 and len(confirm_sel[0]["rates"]) == 9
    metrics = [json.loads(x) for x in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 3 * 6 * 2  # seeds x arms x stages
    assert {m["arm"] for m in metrics} == {"static:0", "static:0.1", "static:0.14", "static:0.2",
                                          "decay_030_to_014", "decay_020_to_010"}
    decay_end = [m for m in metrics if m["arm"] == "decay_030_to_014" and m["stage"] == 1]
    assert all(m["dropout_in_force"] == pytest.approx(0.14) and m["cap"] == 4000 for m in decay_end)
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["lock"] == {"source": "given by hand", "model": "winner=1x2x32"}
    assert config["command"].startswith("scripts/run_experiments.py --mode locked_stream")


def test_study_file_runs_by_name_with_overrides(cache_dir, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["run", "screen_static", *tiny(cache_dir, out), "--token-limits", "5000"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["steps"] == 30 and config["settings"]["train"]["eval_batches"] == 2
    assert config["command"].endswith(" ".join(["run", "screen_static", *tiny(cache_dir, out), "--token-limits", "5000"]))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["confirm", "--seeds", "1", "2"], "confirm needs exactly 3 seeds, got 2"),
        (["stream", "--models", "12x8x384"], "stream needs a locked model"),
        (["screen", "--token-limits", "999999999"], "exceeds the"),
        (["run", "nonexistent"], "no study file 'nonexistent'"),
    ],
)
def test_refusals_are_one_line_and_create_nothing(cache_dir, tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    code = cli.main([*argv[:1], *tiny(cache_dir, out)[0:0], *argv[1:], "--device", "cpu", "--use-cached-data",
                     "--cache-dir", str(cache_dir), "--vocab-size", str(TEST_VOCAB), "--output-dir", str(out)]
                    if argv[0] != "run" else argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_dry_run_prints_grid_and_estimate(cache_dir, tmp_path, capsys):
    assert cli.main(["screen", *tiny(cache_dir, tmp_path / "run"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "grid 6 points = 1 model x 2 seed x 3 dropout x 1 tokens" in printed and "total for one worker" in printed
    assert not (tmp_path / "run").exists()
