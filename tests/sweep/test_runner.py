"""Status (sweep/runner.py): a dead local worker's point is stale with its pid, never NaN."""

import socket
import subprocess
import sys

from dropout_decay.cli import main as cli
from dropout_decay.data.cache import load_cache
from dropout_decay.design import Settings, check
from dropout_decay.sweep.provenance import build_config
from dropout_decay.sweep.runner import print_status
from dropout_decay.sweep.storage import open_storage, open_study, sqlite_url
from dropout_decay.training.device import select_device
from tests.conftest import TEST_VOCAB, tiny


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
