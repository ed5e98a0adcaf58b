"""Do the dry run's time estimates hold? Three runs, each first priced by its own `--dry-run`
and then run for real with the same flags, in one run on this machine (they are noisy):

1. the quickstart (`run quickstart`), the newcomer's first taste;
2. a stream with order seeds and fixed-pool controls (`run evidence_smoke`);
3. a screen of the seed's smallest model, 8x8x256 at the seed's batch (32 x 256), on a cache
   of about 50M tokens (the default corpus repeated as parquet shards, as bench_data.py makes
   it), a few dozen steps per point.

Prints estimate, wall time and wall / estimate for each (goal: within 0.75-1.25). The wall time
is the whole command, from start to its closing line, with the cache already built; building
it is timed apart, since a dry run builds it too.

    .venv/bin/python scripts/bench_estimates.py [--skip-50m | --only-50m]
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_data import synthetic_corpus  # noqa: E402

CLI = [sys.executable, "-m", "dropout_decay.study"]
ROOT = Path(__file__).resolve().parents[1]


def seconds(text: str) -> float:
    """The dry run's 'total for one worker: 1h29m' or '7m13s', in seconds (its total with local
    jobs where the run would start them)."""
    match = (re.search(r"total with \d+ local jobs [^:]*: (?:about )?(\d+)([hm])(\d+)([ms])", text)
             or re.search(r"total for one worker: (?:about )?(\d+)([hm])(\d+)([ms])", text))
    if not match:
        sys.exit(f"no estimate in the dry run's output:\n{text[-2000:]}")
    big, unit, small, _ = match.groups()
    return int(big) * (3600 if unit == "h" else 60) + int(small) * (60 if unit == "h" else 1)


def run(argv: list[str]) -> tuple[str, float]:
    t = time.perf_counter()
    done = subprocess.run([*CLI, *argv], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr, time.perf_counter() - t


def measure(label: str, argv: list[str], out: Path) -> tuple[str, float, float]:
    run([*argv, "--dry-run"])  # the first dry run may build the cache; the second is the estimate
    estimate = seconds(run([*argv, "--dry-run"])[0])
    _, wall = run([*argv, "--output-dir", str(out / label.replace(" ", "_"))])
    return label, estimate, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--skip-50m", action="store_true", help="leave out the 50M-token screen (a few minutes to build)")
    which.add_argument("--only-50m", action="store_true", help="run the 50M-token screen alone")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        if not args.only_50m:
            rows.append(measure("quickstart", ["run", "quickstart"], out))
            rows.append(measure("stream", ["run", "evidence_smoke"], out))
        if not args.skip_50m:
            shards, cache = out / "shards", out / "cache50m"
            shards.mkdir()
            t = time.perf_counter()
            synthetic_corpus(shards, 50_000_000)
            text, _ = run(["cache", "--corpus-glob", str(shards / "*.parquet"), "--cache-dir", str(cache)])
            print(f"50M cache: {text.strip().splitlines()[-1]} ({time.perf_counter() - t:.0f} s to build)")
            rows.append(measure("50M screen", [
                "screen", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache), "--models", "8x8x256",
                "--seeds", "1", "--dropout-rates", "0", "0.1", "0.2", "--token-limits", "5000000", "--steps", "40",
                "--eval-batches", "8", "--eval-every", "20"], out))
    print(f"\n{'run':<12} {'estimate':>10} {'wall':>10} {'wall/estimate':>14}")
    for label, estimate, wall in rows:
        print(f"{label:<12} {estimate:>9.0f}s {wall:>9.0f}s {wall / estimate:>14.2f}")
    print("goal: every ratio within 0.75-1.25")


if __name__ == "__main__":
    main()
