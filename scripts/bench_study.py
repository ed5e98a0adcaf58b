"""Benchmark orchestration overhead per trial with a no-op objective, in one run.

Rows, each on a fresh SQLite file:
  * stock: optuna.GridSampler driven by study.optimize(n_trials=N);
  * ours:  FastGridSampler driven by runner.work() (which also checks heartbeats, reclaims
           dead local workers and reads the grid status before every point);
at 100 and 1,000 grid points. Each row gives the total and, inside it, the sampler's grid
bookkeeping (`_get_unvisited_grid_ids`, which stock Optuna makes O(n) per trial with an
element-wise search-space comparison per stored trial: O(n^2) a grid; goal ours < 10 ms/trial
at 1,000). The rest is storage round trips, a floor that does not grow with the grid. Then the storage choice: a
trial that writes like a real one (5 user attrs, 4 reports) on SQLite as Optuna opens it, on
SQLite as we open it (WAL), and on a journal file.
"""

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropout_decay.sweep.optuna_internals import FastGridSampler  # noqa: E402
from dropout_decay.sweep.runner import open_storage, open_study, work  # noqa: E402

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)


def space(n: int) -> dict:
    return {"model": ["a", "b", "c", "d"], "seed": [1, 2, 3, 4, 5], "dropout": [i / (n // 20) for i in range(n // 20)]}


def noop(grid):
    def objective(trial):
        for name, values in grid.items():
            trial.suggest_categorical(name, values)
        return 0.0
    return objective


def writer(grid):
    def objective(trial):
        for name, values in grid.items():
            trial.suggest_categorical(name, values)
        for step in range(4):
            trial.report(1.0 / (step + 1), step)
        for key in ("worker", "train_loss", "val_loss", "gap", "trace"):
            trial.set_user_attr(key, 1.0)
        return 0.0
    return objective


def per_trial(fn, n: int) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) / n * 1e3


def clocked(sampler):
    """Accumulate the seconds the sampler spends finding unvisited grid points."""
    sampler.spent = 0.0
    method = sampler._get_unvisited_grid_ids

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return method(*a, **k)
        finally:
            sampler.spent += time.perf_counter() - t
    sampler._get_unvisited_grid_ids = timed
    return sampler


def stock(n: int, d: str) -> tuple[float, float]:
    grid = space(n)
    sampler = clocked(optuna.samplers.GridSampler(grid))
    study = optuna.create_study(storage=f"sqlite:///{d}/stock{n}.db", sampler=sampler)
    total = per_trial(lambda: study.optimize(noop(grid), n_trials=n), n)
    assert len(study.trials) == n
    return total, sampler.spent / n * 1e3


def ours(n: int, d: str) -> tuple[float, float]:
    grid = space(n)
    storage = open_storage(f"sqlite:///{d}/ours{n}.db")
    study = open_study(storage, "bench", {"grid": grid, "grid_seed": 0, "fingerprint": "bench"})
    clocked(study.sampler)
    total = per_trial(lambda: work(study, noop(grid), say=lambda m: None), n)
    assert len(study.trials) == n
    return total, study.sampler.spent / n * 1e3


def storage_write(kind: str, n: int, d: str) -> float:
    grid = space(n)
    storage = {"sqlite": lambda: f"sqlite:///{d}/w.db", "ours": lambda: open_storage(f"sqlite:///{d}/wal.db"),
               "journal": lambda: JournalStorage(JournalFileBackend(f"{d}/w.log"))}[kind]()
    study = optuna.create_study(storage=storage, sampler=FastGridSampler(grid))
    return per_trial(lambda: study.optimize(writer(grid), n_trials=n), n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[100, 1000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print(f"optuna {optuna.__version__}; ms per trial with a no-op objective (total = bookkeeping + storage)")
        for n in args.sizes:
            (st, sb), (ot, ob) = stock(n, d), ours(n, d)
            print(f"  {n:5d} points: stock total {st:6.1f} (grid bookkeeping {sb:6.1f})   "
                  f"ours total {ot:5.1f} (grid bookkeeping {ob:4.1f})   bookkeeping stock/ours {sb / ob:6.1f}x"
                  + ("   goal: ours < 10 ms" if n >= 1000 else ""))
        sq, wal, jr = (storage_write(k, 100, d) for k in ("sqlite", "ours", "journal"))
        print(f"  a trial's writes (4 reports, 5 user attrs): SQLite as Optuna opens it {sq:.1f} ms, "
              f"SQLite WAL as we open it {wal:.1f} ms ({sq / wal:.1f}x), journal file {jr:.1f} ms")


if __name__ == "__main__":
    main()
