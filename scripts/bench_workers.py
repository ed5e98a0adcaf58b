"""Benchmark several workers on one machine against one, in one run (these machines are noisy).

The same small screen grid (a tiny model on the default corpus, on the CPU) is run four ways:
  * one process (every core);
  * one process on one thread, so the speed-ups of threads and of processes can be compared;
  * N processes on one SQLite file with the default threads (each takes cores / live workers);
  * N processes each forcing every core (`--threads CORES`), as torch does by default.
Each prints wall time; the ratios say whether N workers are slower than one (goal: not). The
first two are repeated in alternation (`--rounds`), since one pair of runs on a noisy VM can
differ by more than the effect. Wall time includes what a worker pays once (start-up, joining
the study, a last point trained alone), so the script also reads each trial's own duration from
the storage: points per second while training, which is what a longer grid converges to. N
workers can beat one only where N single-thread processes scale better than one process's N
threads; the last line puts those two speed-ups side by side.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dropout_decay.sweep.cpu import cores  # noqa: E402


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


def points_per_second(out: Path, workers: int) -> float:
    """Training throughput: workers / mean trial duration, from the run's own storage."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}")
    [name] = optuna.study.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    return workers / statistics.mean((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3, help="alternating 1-worker / N-worker runs")
    args = ap.parse_args()
    n, N = cores(), args.workers
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "dropout_decay.study", "cache", "--vocab-size", "1024"], cwd=ROOT,
                       check=True, capture_output=True)
        ones, shareds, rates = [], [], []
        for r in range(args.rounds):
            ones.append(run(Path(d) / f"one{r}", args.steps, 1, None))
            shareds.append(run(Path(d) / f"shared{r}", args.steps, N, None))
            rates.append(points_per_second(Path(d) / f"shared{r}", N) / points_per_second(Path(d) / f"one{r}", 1))
        single = run(Path(d) / "single", args.steps, 1, 1)
        greedy = run(Path(d) / "greedy", args.steps, N, n)
    one, shared = statistics.median(ones), statistics.median(shareds)
    ratios = [b / a for a, b in zip(ones, shareds)]
    print(f"{n} cores, 8 grid points of 2x4x128, {args.steps} steps each; {args.rounds} alternating rounds, medians")
    print(f"  1 worker:                                  {one:6.1f} s   (runs {', '.join(f'{t:.1f}' for t in ones)})")
    print(f"  {N} workers, threads shared (default):      {shared:6.1f} s   (runs {', '.join(f'{t:.1f}' for t in shareds)})")
    print(f"      wall-time ratio to 1 worker, per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
          f"median {statistics.median(ratios):.2f}   goal <= 1.0")
    print(f"      training throughput (points/s while training) against 1 worker, per round: "
          f"{', '.join(f'{x:.2f}' for x in rates)}; median {statistics.median(rates):.2f}   goal >= 1.0")
    print(f"  {N} workers, {n} threads each (torch default): {greedy:6.1f} s   ratio to 1 worker {greedy / one:.2f}")
    print(f"  1 worker, 1 thread:                        {single:6.1f} s")
    print(f"  speed-up over 1 worker on 1 thread: {n} threads in one process {single / one:.2f}x, "
          f"{N} workers {single / shared:.2f}x")


if __name__ == "__main__":
    main()
