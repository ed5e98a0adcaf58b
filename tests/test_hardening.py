"""What a crash or a dead worker leaves behind: artefacts as a set, honest status, the sampler."""

import hashlib
import json
import socket
import subprocess
import sys

import optuna
import pytest
from optuna.samplers import GridSampler

from dropout_decay.report import artefacts
from dropout_decay.cli import main as cli
from dropout_decay.data.cache import load_cache
from dropout_decay.training.device import select_device
from dropout_decay.sweep.optuna_internals import FastGridSampler
from dropout_decay.sweep.provenance import build_config
from dropout_decay.sweep.runner import print_status
from dropout_decay.design.settings import Settings, check
from dropout_decay.sweep.storage import open_storage, open_study, sqlite_url

from conftest import TEST_VOCAB, load, tiny


def test_a_crash_while_exporting_leaves_the_previous_complete_set(cache_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith("study.db")}
    written = []
    original = artefacts.write_text

    def crash_on_the_fourth(path, text):
        written.append(path)
        if len(written) == 4:
            raise OSError("disk full")
        original(path, text)

    monkeypatch.setattr(artefacts, "write_text", crash_on_the_fourth)
    with pytest.raises(OSError):
        artefacts.export(load(out), out)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith("study.db")}
    assert after == before  # the previous set, whole
    monkeypatch.setattr(artefacts, "write_text", original)
    artefacts.export(load(out), out)
    stamp = json.loads((out / "export.json").read_text())
    assert all(hashlib.sha256((out / n).read_bytes()).hexdigest() == h for n, h in stamp["files"].items())
    assert not (out / artefacts.PENDING).exists()


def test_a_set_written_but_not_moved_is_moved_by_the_next_export(cache_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    calls = []
    original = artefacts._move_pending

    def die_after_writing(folder):
        calls.append(folder)
        if len(calls) == 2:  # the move after this export's writes
            raise KeyboardInterrupt
        original(folder)

    monkeypatch.setattr(artefacts, "_move_pending", die_after_writing)
    (out / "metrics.jsonl").write_text("stale\n")
    with pytest.raises(KeyboardInterrupt):
        artefacts.export(load(out), out)
    assert (out / artefacts.PENDING / "export.json").is_file()  # a complete new set waits
    monkeypatch.setattr(artefacts, "_move_pending", original)
    original(out)  # what the next export does first
    assert (out / "metrics.jsonl").read_text().count("\n") == 6 and not (out / artefacts.PENDING).exists()


def test_status_shows_a_dead_local_workers_point_as_stale_with_its_pid_and_never_nan(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out), "--dry-run"]) == 0
    s = check(Settings(stage="screen", models=["1x2x32"], seeds=[1], dropout_rates=[0.0, 0.1, 0.3], token_limits=[5000],
                       device="cpu", cache_dir=str(cache_dir), vocab_size=TEST_VOCAB))
    config = build_config(s, load_cache(cache_dir, TEST_VOCAB), select_device("cpu"), "test", None)
    out.mkdir()
    study = open_study(open_storage(sqlite_url(out)), "grid", config)
    lines = []
    print_status(study, say=lines.append)  # nothing has finished: no mean, no ETA, no NaN
    assert any("no point has finished yet" in line for line in lines) and not any("nan" in line for line in lines)
    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)
    ghost = study.ask()  # a point taken by a worker of this host that has since died
    ghost.set_user_attr("worker", f"{socket.gethostname()}:{pid}")
    capsys.readouterr()
    assert cli.main(["status", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "complete 0, running 0, stale 1, failed 0, queued 0, left 2" in printed
    assert "stale: trial 0" in printed and f"its worker (pid {pid}) is gone" in printed and "nan" not in printed.lower()


def test_the_fast_grid_sampler_visits_the_stock_samplers_points_in_the_same_order():
    space = {"model": ["a", "b"], "seed": [1, 2, 3], "dropout": [0.0, 0.1, 0.2, 0.3]}
    orders = []
    for sampler in (GridSampler(space, seed=7), FastGridSampler(space, seed=7)):
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: sum(hash(str(t.suggest_categorical(k, v))) % 7 for k, v in space.items()), n_trials=24)
        orders.append([(t.params, t.system_attrs["grid_id"]) for t in study.trials])
    assert orders[0] == orders[1] and len({str(p) for p, _ in orders[1]}) == 24
    fast = FastGridSampler(space, seed=7)
    assert fast.size == 24 and all(fast.point(gid) == params for params, gid in orders[1])


def test_workers_on_one_machine_share_its_cores(tmp_path, monkeypatch):
    import os

    import torch

    from dropout_decay.sweep import cpu

    monkeypatch.setenv("DROPOUT_DECAY_WORKERS_DIR", str(tmp_path / "workers"))
    monkeypatch.setattr(cpu, "cores", lambda: 8)
    before = torch.get_num_threads()
    try:
        cpu.register()
        assert cpu.share() == 8 and torch.get_num_threads() == 8  # alone: every core
        (tmp_path / "workers" / str(os.getppid())).touch()  # a second live worker (pytest's parent)
        (tmp_path / "workers" / "999999999").touch()  # a dead one: not counted, and cleared away
        assert cpu.live_workers() == 2 and cpu.share() == 4 and torch.get_num_threads() == 4
        assert not (tmp_path / "workers" / "999999999").exists()
        assert cpu.share(fixed=3) == 3  # --threads wins
        cpu.unregister()
        assert not (tmp_path / "workers" / str(os.getpid())).exists()
    finally:
        torch.set_num_threads(before)


def test_omp_num_threads_caps_the_cores_a_worker_counts(monkeypatch):
    from dropout_decay.sweep import cpu

    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu.cores() == 8
    for value, expected in (("3", 3), ("16", 8), ("0", 8), ("", 8), ("four", 8)):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert cpu.cores() == expected, value
