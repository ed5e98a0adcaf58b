"""Fault injection: SIGKILL a real small run at N random moments, resume each time, then check.

A small screen on the default corpus (vocab 512, a tiny model) is run once undisturbed, as the
reference. Then the same command is started again and again in a second folder and killed with
SIGKILL, aimed at four moments: anywhere in the first half of a run (imports, cache, study,
training), while the study is created, while a point trains, and while the artefacts are
written (for the last three the process is held at the start of that phase with
DROPOUT_DECAY_PAUSE_AT, then killed at a random moment in or just after it). The kills during
export come last, once the grid is done, so that the others still find points to train.
Finally it runs to the end. Printed and checked:
  * every grid point COMPLETE exactly once, and no trained duplicate;
  * each point's metrics bitwise equal to the reference run's;
  * SQLite's integrity_check on the storage;
  * the artefacts a consistent set: export.json's hashes match every file, metrics.jsonl holds
    every point once.
"""

import argparse
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def command(out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "dropout_decay.study", "screen", "--device", "cpu", "--vocab-size", "512",
            "--cache-dir", str(cache), "--models", "1x2x32", "--seeds", "1", "2", "--dropout-rates", "0", "0.1", "0.2", "0.3",
            "--token-limits", "20000", "--steps", "150", "--batch-size", "8", "--seq-len", "32", "--eval-batches", "2",
            "--eval-every", "50", "--output-dir", str(out)]


def start(cmd: list[str], pause_at: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, DROPOUT_DECAY_PAUSE_AT=pause_at or "", DROPOUT_DECAY_PAUSE_S="0.4")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def plan(kills: int, rng: random.Random) -> list[str]:
    """Where each kill is aimed: the first while the study is created (the half-made study a later
    run must finish), the exports last; the rest shuffled between them."""
    exporting = kills // 5
    middle = [("anywhere", "creating", "training", "training")[k % 4] for k in range(kills - 1 - exporting)]
    rng.shuffle(middle)
    return ["creating", *middle, *["exporting"] * exporting]


def kill_at(aim: str, cmd: list[str], rng: random.Random, horizon: float) -> str:
    """Start the run and SIGKILL it at a random moment of the aimed phase; returns what happened."""
    proc = start(cmd, None if aim == "anywhere" else aim)
    try:
        if aim == "anywhere":
            time.sleep(rng.uniform(0, horizon / 2))
        else:
            deadline = time.time() + 120
            for line in proc.stderr:  # the run announces the pause; kill somewhere in or just after it
                if line.startswith(f"paused at {aim}") or time.time() > deadline:
                    break
            time.sleep(rng.uniform(0, 1.2 if aim == "training" else 0.6))
        if proc.poll() is not None:
            return f"{aim} (ended first)"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return aim
    finally:
        proc.kill()
        proc.wait()


def results(out: Path) -> dict:
    """Per grid point (by params): its COMPLETE trials' segments, read with plain SQL."""
    with sqlite3.connect(out / "study.db") as con:
        rows = con.execute("""SELECT t.trial_id, t.state, p.param_name, p.param_value FROM trials t
                              JOIN trial_params p USING (trial_id)""").fetchall()
        attrs = dict(con.execute("""SELECT trial_id, value_json FROM trial_user_attributes
                                    WHERE key = 'segments'""").fetchall())
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    params: dict[int, dict] = {}
    states = {}
    for trial, state, name, value in rows:
        params.setdefault(trial, {})[name] = value
        states[trial] = state
    by_point: dict[tuple, list] = {}
    for trial, p in params.items():
        if states[trial] == "COMPLETE":
            by_point.setdefault(tuple(sorted(p.items())), []).append(attrs.get(trial))
    return {"points": by_point, "integrity": integrity, "states": Counter(states.values())}


def artefacts_consistent(out: Path) -> bool:
    stamp = json.loads((out / "export.json").read_text())
    return all(hashlib.sha256((out / name).read_bytes()).hexdigest() == digest for name, digest in stamp["files"].items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t = time.perf_counter()
        subprocess.run(command(d / "reference", d / "cache"), cwd=ROOT, check=True, capture_output=True)
        horizon = time.perf_counter() - t
        reference = results(d / "reference")
        aims = Counter(kill_at(aim, command(d / "killed", d / "cache"), rng, horizon) for aim in plan(args.kills, rng))
        final = subprocess.run(command(d / "killed", d / "cache"), cwd=ROOT, capture_output=True, text=True)
        if final.returncode:
            sys.exit(f"the final resume failed: {final.stderr[-2000:]}")
        killed = results(d / "killed")
        points = killed["points"]
        duplicates = sum(len(v) - 1 for v in points.values())
        mismatches = sum(points.get(k, [None])[0] != v[0] for k, v in reference["points"].items())
        metrics = (d / "killed" / "metrics.jsonl").read_text().splitlines()
        consistent = artefacts_consistent(d / "killed") and len(metrics) == len(reference["points"])
    print(f"reference run: {len(reference['points'])} points in {horizon:.1f} s")
    print(f"kills: {args.kills} ({', '.join(f'{n} {aim}' for aim, n in sorted(aims.items()))})")
    print(f"trials in the killed storage: {dict(killed['states'])} (a FAIL is a point killed while it trained, "
          "then trained again)")
    print(f"points complete: {len(points)}/{len(reference['points'])}; trained duplicates: {duplicates}; "
          f"metric mismatches with the reference: {mismatches}")
    print(f"SQLite integrity_check: {killed['integrity']}; artefacts a consistent set: {consistent}")
    ok = (len(points) == len(reference["points"]) and not duplicates and not mismatches
          and killed["integrity"] == "ok" and consistent)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
