"""Ctrl-C at any moment (common/interrupts.py), sent as a real SIGINT to a real process: exit 130,
one accurate line, no traceback, a consistent storage, and a next run that finishes the grid."""

import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dropout_decay.cli import main as cli
from dropout_decay.common import interrupts
from dropout_decay.sweep.storage import open_storage, sqlite_url
from tests.conftest import default_ctrl_c, load, mid_grid, patience, points, tiny

ROOT = Path(__file__).resolve().parents[2]


def spawn(args: list[str], pause_at: str = "") -> subprocess.Popen:
    env = dict(os.environ, DROPOUT_DECAY_PAUSE_AT=pause_at, DROPOUT_DECAY_PAUSE_S="60")
    return subprocess.Popen([sys.executable, "-m", "dropout_decay.study", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c)


def interrupted(proc: subprocess.Popen, seen: list[str] = ()) -> str:
    """Wait for the process after its SIGINT: exit 130, no traceback; returns its last line."""
    _, rest = proc.communicate(timeout=patience(120))
    err = "".join(seen) + rest
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    return err.strip().splitlines()[-1]


CTRL_C_INSIDE_EXEC = """
import os, signal, sys
class Finder:  # when dropout_decay.design.settings is first imported, a Ctrl-C lands in code run by exec()
    def find_spec(self, name, path=None, target=None):
        if name == "dropout_decay.design.settings":
            sys.meta_path.remove(self)
            exec("os.kill(os.getpid(), signal.SIGINT)\\nimport time\\ntime.sleep(10)", {"os": os, "signal": signal})
sys.meta_path.insert(0, Finder())
"""


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 120) -> list[str]:
    lines, deadline = [], time.time() + patience(timeout)
    for line in proc.stderr:
        lines.append(line)
        if line.startswith(prefix):
            return lines
        assert time.time() < deadline, f"never saw {prefix!r}"
    raise AssertionError(f"the process ended before {prefix!r}: {''.join(lines)[-2000:]}")


@pytest.mark.parametrize("delay", [0.4, 1.2])
def test_ctrl_c_while_importing_is_one_line_and_writes_nothing(cache_dir, tmp_path, delay):
    out = tmp_path / "run"
    proc = spawn(["screen", *tiny(cache_dir, out)])
    time.sleep(delay)  # torch, optuna and pandas are still being imported
    proc.send_signal(signal.SIGINT)
    assert interrupted(proc) in ("interrupted while starting: nothing was written",  # a warm disk imports fast:
                                 "interrupted while creating the study: rerun the same command to finish creating it",
                                 "interrupted before training began: rerun the same command to start")
    assert not out.exists() or not any(out.iterdir()) or (out / "study.db").exists()


def test_a_ctrl_c_inside_exec_while_starting_still_exits_130(cache_dir, tmp_path):
    """Code run by exec() of a string (dataclasses and numpy.f2py run such code while scipy is
    imported) marks a KeyboardInterrupt raised in it as unhandled even when we catch it, and
    CPython then ended the process by SIGINT (status -2) after our line, not with 130."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CTRL_C_INSIDE_EXEC)
    proc = subprocess.Popen([sys.executable, "-m", "dropout_decay.study", "screen", *tiny(cache_dir, tmp_path / "run")],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(hook)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c)
    assert interrupted(proc) == "interrupted while starting: nothing was written"
    assert not (tmp_path / "run").exists()


def test_ctrl_c_while_creating_the_study_leaves_it_finishable(cache_dir, tmp_path):
    out = tmp_path / "run"
    proc = spawn(["screen", *tiny(cache_dir, out)], pause_at="creating")
    seen = wait_for_line(proc, "paused at creating")
    proc.send_signal(signal.SIGINT)
    assert interrupted(proc, seen) == "interrupted while creating the study: rerun the same command to finish creating it"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    assert len(points(load(out))) == 6


def test_ctrl_c_while_writing_artefacts_keeps_the_last_complete_set(cache_dir, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith("study.db")}
    proc = spawn(["screen", *tiny(cache_dir, out)], pause_at="exporting")
    seen = wait_for_line(proc, "paused at exporting")
    proc.send_signal(signal.SIGINT)
    assert interrupted(proc, seen).startswith("interrupted while writing artefacts: the previous set is intact")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith("study.db")}
    assert after == before


def test_a_second_ctrl_c_during_cleanup_keeps_the_failure_reason(cache_dir, tmp_path):
    out = tmp_path / "run"
    args = tiny(cache_dir, out, "--steps", "300")
    proc = spawn(["screen", *args])
    deadline = time.time() + patience(300)
    while not mid_grid(out / "study.db"):
        assert proc.poll() is None and time.time() < deadline, "the run never got mid-grid"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # impatient: again, while the failure is being recorded
    last = interrupted(proc)
    assert last.startswith("interrupted: the running point is marked failed ('interrupted')")
    study = load(out)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [t.user_attrs["fail_reason"] for t in failed] == ["interrupted"]
    assert not study.get_trials(states=(TrialState.RUNNING,))
    stamp = json.loads((out / "export.json").read_text())
    assert stamp["files"] and (out / "metrics.jsonl").read_text().count("\n") == len(points(study))
    assert cli.main(["resume", str(out)]) == 0
    assert len(points(load(out))) == 6


def test_a_study_left_half_made_is_finished_by_the_next_run(cache_dir, tmp_path, monkeypatch):
    """The kill between creating a study and storing its config, made exact."""
    out = tmp_path / "run"
    original = optuna.Study.set_user_attr

    def die_once(self, key, value):
        monkeypatch.setattr(optuna.Study, "set_user_attr", original)
        raise KeyboardInterrupt

    monkeypatch.setattr(optuna.Study, "set_user_attr", die_once)
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 130
    storage = open_storage(sqlite_url(out))
    [name] = optuna.get_all_study_names(storage)
    assert "config" not in optuna.load_study(study_name=name, storage=storage).user_attrs  # half-made
    assert cli.main(["status", str(out)]) == 2  # named as half-made, not as "not made by dropout-decay"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    study = load(out)
    assert len(points(study)) == 6 and study.user_attrs["config"]["grid_size"] == 6


def test_a_ctrl_c_python_swallows_in_a_garbage_collector_callback_is_raised_at_the_next_check(capsys):
    """Python prints a KeyboardInterrupt raised inside a weakref callback as "Exception ignored"
    and goes on: a Ctrl-C landing there (SQLAlchemy has such callbacks) let a screen run to its end."""
    class Thing:
        pass

    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal, even
    interrupts.listen()                                                          # where the suite runs with it ignored
    try:
        thing = Thing()
        weakref.finalize(thing, lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.5)))
        del thing  # the callback runs here, and the SIGINT lands inside it
        assert "KeyboardInterrupt" not in capsys.readouterr().err  # kept quiet: it is not lost
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    finally:
        interrupts.release()
        signal.signal(signal.SIGINT, started_with)
    interrupts.check()  # a new command starts with no Ctrl-C pending
