"""optuna-dashboard (report/dashboard.py) serves studies, trials and the verdict note over HTTP."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dropout_decay.cli import main as cli
from dropout_decay.report.notes import SEED_IMPORTANCE
from tests.conftest import (
    default_ctrl_c,
    load,
    patience,
    tiny,
)

ROOT = Path(__file__).resolve().parents[2]


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
        deadline = time.time() + patience(60)
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
        proc.communicate(timeout=patience(30))
    assert proc.returncode == 0
