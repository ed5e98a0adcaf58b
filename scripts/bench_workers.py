"""Benchmark several workers on one machine against one, in one run (these machines are noisy).

The same small screen grid (a tiny model on the default corpus, on the CPU) is run four ways:
  * one process (every core);
  * one process on one thread, so the speed-ups of threads and of processes can be compared;
  * N processes on one SQLite file with the default threads (each takes cores / live workers);
  * N processes each forcing every core (`--threads CORES`), as torch does by default.
Each prints wall time; the ratios say whether N workers are slower than one (goal: not). N
workers can beat one only where N single-thread processes scale better than one process's N
threads; the last line puts those two speed-ups side by side.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dropout_decay.cpu import cores  # noqa: E402


def grid(out: Path, steps: int) -> list[str]:
    return ["screen", "--device", "cpu", "--vocab-size", "1024", "--models", "2x4x128", "--seeds", "1", "2",
            "--dropout-rates", "0", "0.05", "0.1", "0.2", "--token-limits", "50000", "--steps", str(steps),
            "--batch-size", "16", "--seq-len", "64", "--lr", "0.003", "--warmup-steps", "10", "--eval-batches", "4",
            "--eval-every", "0", "--output-dir", str(out)]


def run(out: Path, steps: int, workers: int, threads: int | None) -> float:
    """Wall seconds for `workers` processes to finish the grid together."""
    cmd = [sys.executable, "-m", "dropout_decay.study"]
    extra = ["--threads", str(threads)] if threads else []
    t = time.perf_counter()
    first = subprocess.Popen([*cmd, *grid(out, steps), *extra], cwd=ROOT, stderr=subprocess.DEVNULL)
    while not (out / "study.db").exists():
        time.sleep(0.05)
    time.sleep(1.0)  # let the first process create the study before the others join it
    others = [subprocess.Popen([*cmd, "worker", str(out), *extra], cwd=ROOT, stderr=subprocess.DEVNULL)
              for _ in range(workers - 1)]
    codes = [p.wait() for p in [first, *others]]
    if any(codes):
        sys.exit(f"a worker failed: exit codes {codes}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    n = cores()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "dropout_decay.study", "cache", "--vocab-size", "1024"], cwd=ROOT,
                       check=True, capture_output=True)
        one = run(Path(d) / "one", args.steps, 1, None)
        single = run(Path(d) / "single", args.steps, 1, 1)
        shared = run(Path(d) / "shared", args.steps, args.workers, None)
        greedy = run(Path(d) / "greedy", args.steps, args.workers, n)
    print(f"{n} cores, 8 grid points of 2x4x128, {args.steps} steps each")
    print(f"  1 worker:                                  {one:6.1f} s")
    print(f"  {args.workers} workers, threads shared (default):      {shared:6.1f} s   ratio to 1 worker {shared / one:.2f}   goal <= 1.0")
    print(f"  {args.workers} workers, {n} threads each (torch default): {greedy:6.1f} s   ratio to 1 worker {greedy / one:.2f}")
    print(f"  1 worker, 1 thread:                        {single:6.1f} s")
    print(f"  speed-up over 1 worker on 1 thread: {n} threads in one process {single / one:.2f}x, "
          f"{args.workers} workers {single / shared:.2f}x")


if __name__ == "__main__":
    main()
