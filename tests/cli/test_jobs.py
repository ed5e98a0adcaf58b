"""Local jobs (cli/jobs.py, --jobs): real processes on one SQLite storage, real kills and a real
Ctrl-C. Every point trained exactly once is checked from the storage, trial by trial."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dropout_decay.cli import main as cli
from dropout_decay.sweep.storage import open_storage, sqlite_url
from tests.conftest import TEST_VOCAB, default_ctrl_c, patience, points, read_only

ROOT = Path(__file__).resolve().parents[2]


def grid(cache_dir, out, steps=150):
    """8 points: 2 seeds x 4 rates of a tiny model."""
    return ["screen", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir), "--vocab-size",
            str(TEST_VOCAB), "--models", "1x2x32", "--seeds", "1", "2", "--dropout-rates", "0", "0.1", "0.2", "0.3",
            "--steps", str(steps), "--batch-size", "4", "--seq-len", "32", "--eval-batches", "2", "--eval-every", "50",
            "--output-dir", str(out)]


def study_of(out: Path) -> optuna.Study:
    storage = open_storage(sqlite_url(out))
    [name] = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def each_point_once(study: optuna.Study) -> list:
    done = points(study)
    assert len(done) == 8 == len(set(done)), done
    return study.get_trials(states=(TrialState.COMPLETE,))


def start(args) -> subprocess.Popen:
    """The command as a terminal starts it: with Ctrl-C live, even when this test run was started
    in the background (where the shell hands its children SIGINT ignored)."""
    return subprocess.Popen([sys.executable, "-m", "dropout_decay.study", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=default_ctrl_c)


def wait_for(condition, what: str, proc: subprocess.Popen, timeout=120) -> None:
    deadline = time.time() + patience(timeout)
    while not condition():
        assert proc.poll() is None, f"the run ended while waiting for {what}: {proc.stdout.read()[-2000:]}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def job_holding_a_point(out: Path, parent: int) -> int | None:
    """The pid of a job (not the command itself) that is training a point, if one is (read
    without the storage's write lock: conftest.read_only)."""
    [rows] = read_only(out / "study.db", (
        "SELECT a.value_json FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
        "AND a.key = 'worker' WHERE t.state = 'RUNNING' "
        "AND (SELECT count(*) FROM trial_params p WHERE p.trial_id = t.trial_id) = 4",)) or [[]]
    pids = [int(json.loads(worker).rpartition(":")[2]) for (worker,) in rows]
    return next((pid for pid in pids if pid != parent), None)


def test_two_jobs_share_a_grid_and_train_every_point_exactly_once(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*grid(cache_dir, out), "--jobs", "2"]) == 0
    trained = each_point_once(study_of(out))
    workers = {t.user_attrs["worker"] for t in trained}
    assert len(workers) == 2 and all(len(trained) > sum(t.user_attrs["worker"] == w for t in trained) for w in workers)
    assert not study_of(out).get_trials(states=(TrialState.PRUNED, TrialState.FAIL))  # no point twice, none lost
    said = capsys.readouterr().err
    assert "2 jobs train this grid (this process and 1 more" in said and said.count("ETA") >= 2
    assert (out / "jobs" / "job-1.log").is_file() and json.loads((out / "export.json").read_text())["files"]


def test_a_killed_job_leaves_the_others_finishing_and_its_point_is_trained_again(cache_dir, tmp_path):
    out = tmp_path / "run"
    proc = start([*grid(cache_dir, out, steps=250), "--jobs", "2"])
    wait_for(lambda: (out / "study.db").exists() and job_holding_a_point(out, proc.pid), "a job mid-point", proc)
    victim = job_holding_a_point(out, proc.pid)
    os.kill(victim, signal.SIGKILL)
    said, _ = proc.communicate(timeout=patience(300))
    assert proc.returncode == 0, said[-2000:]
    study = study_of(out)
    each_point_once(study)
    [lost] = study.get_trials(states=(TrialState.FAIL,))
    assert lost.user_attrs["fail_reason"] == f"worker lost (pid {victim} died)"
    [retry] = [t for t in study.trials if t.user_attrs.get("retry_of") == lost.number]
    assert retry.state == TrialState.COMPLETE and retry.params == lost.params


def test_ctrl_c_stops_every_job_and_the_next_run_resumes_each_point_once(cache_dir, tmp_path):
    out = tmp_path / "run"
    proc = start([*grid(cache_dir, out, steps=250), "--jobs", "2"])
    wait_for(lambda: (out / "study.db").exists() and job_holding_a_point(out, proc.pid), "a job mid-point", proc)
    os.kill(proc.pid, signal.SIGINT)  # the command alone: it passes the Ctrl-C on to its job
    said, _ = proc.communicate(timeout=patience(120))
    assert proc.returncode == 130, said[-2000:]
    study = study_of(out)
    assert not study.get_trials(states=(TrialState.RUNNING,))  # nothing left claiming to train
    interrupted = [t for t in study.get_trials(states=(TrialState.FAIL,)) if t.user_attrs["fail_reason"] == "interrupted"]
    assert len(interrupted) >= 1 and len(points(study)) < 8
    assert "Traceback" not in said
    assert cli.main([*grid(cache_dir, out, steps=250), "--jobs", "1"]) == 0
    each_point_once(study_of(out))


def test_jobs_whose_models_do_not_fit_together_are_refused_before_anything_is_made(cache_dir, tmp_path, monkeypatch,
                                                                                     capsys):
    monkeypatch.setenv("DROPOUT_DECAY_MEMORY_GIB", "0.4")
    out = tmp_path / "run"
    assert cli.main([*grid(cache_dir, out), "--jobs", "64"]) == 2
    err = capsys.readouterr().err
    assert "--jobs 64: 64 models of about" in err and "is available: use --jobs" in err and "Traceback" not in err
    assert not (out / "study.db").exists()


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "257"])
def test_a_bad_jobs_count_is_one_line(cache_dir, tmp_path, capsys, value):
    assert cli.main([*grid(cache_dir, tmp_path / "run"), "--jobs", value]) == 2
    assert f"--jobs must be auto or 1..256, got '{value}'" in capsys.readouterr().err


def test_auto_starts_its_jobs_seconds_into_the_first_point_once_its_pace_shows_they_pay(cache_dir, tmp_path, capsys,
                                                                                       monkeypatch):
    from dropout_decay.cli import jobs
    from dropout_decay.sweep import cpu, objective

    monkeypatch.setattr(objective, "PROGRESS_EVERY_S", 0.0)  # a progress line at every logged step (50 and 100)
    monkeypatch.setattr(jobs, "JOBS_PAY_S", 0.0)  # any grid repays a job
    monkeypatch.setattr(cpu, "cores", lambda: 2)  # as on the smallest machine that runs jobs
    out = tmp_path / "run"
    assert cli.main([*grid(cache_dir, out), "--jobs", "auto"]) == 0
    said = capsys.readouterr().err
    # once its first steps are timed (step 9 of 150), before its first progress line (step 50), not after its end
    assert said.index("training model=") < said.index("2 jobs train this grid") < said.index("step 50/150")
    each_point_once(study_of(out))
