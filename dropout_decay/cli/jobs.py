"""Local jobs (--jobs): more worker processes on this machine, on the stage's own storage.

Why processes, not threads: two processes of one thread each trained 1.30x the tokens per second
of one process of two threads on 2 cores (scripts/bench_speed.py). Each job is a `worker` of the
stage's study, so the storage's lock-free ownership gives every grid point to exactly one of
them and recovery re-queues a job's point if it dies; the cores are shared among live workers
(sweep/cpu.py), so each takes cores / N threads. The jobs run in their own session, so a Ctrl-C
reaches only the command, which passes it on once and waits for them to mark their points
interrupted; they write no artefacts (the command does, at the end) and log to `jobs/` in the
run folder. `auto` (the default) adds jobs on a CPU once the first point's pace (its first steps,
timed seconds in, before any compile) shows that the rest of the grid will take long enough to
repay starting them; on MPS and CUDA it keeps one process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..common import UsageError, log
from ..sweep import cpu

JOBS_PAY_S = 60.0  # auto adds jobs when what is left would take one process this long (a job starts in about 5 s)
JOB_START_S = 5.0  # what a job takes to start (torch, the cache, the storage) on 2 cores, measured
STOP_WAIT_S = 60.0  # how long a Ctrl-C waits for the jobs to mark their points interrupted
MAX_JOBS = 256


def parse_jobs(text: str) -> int | None:
    """`auto` (None) or a count; one line for anything else."""
    if text == "auto":
        return None
    if not text.isdigit() or not 0 < int(text) <= MAX_JOBS:
        raise UsageError(f"--jobs must be auto or 1..{MAX_JOBS}, got {text!r}")
    return int(text)


def affordable(need_bytes: int, available: int | None) -> int:
    """How many models of this need fit in memory at once."""
    return MAX_JOBS if available is None else max(available // max(need_bytes, 1), 1)


def auto_jobs(per_point_s: float, left: int, cores: int, need_bytes: int, available: int | None) -> int:
    """How many processes auto runs once a point has taken `per_point_s` with `left` to go: more
    than one only where the rest would take one process over JOBS_PAY_S; then one per core, at
    most one per point and as many models as fit in memory."""
    if per_point_s * left < JOBS_PAY_S:
        return 1
    return max(min(cores, left + 1, affordable(need_bytes, available)), 1)


def check_jobs_fit(jobs: int, need_bytes: int, available: int | None, gib) -> None:
    """Refuse N jobs whose models do not fit in memory together, naming the count that does."""
    if available is not None and jobs * need_bytes > available:
        fits = affordable(need_bytes, available)
        raise UsageError(f"--jobs {jobs}: {jobs} models of about {gib(need_bytes)} each need {gib(jobs * need_bytes)} "
                         f"and {gib(available)} is available: use --jobs {fits} or fewer")


@dataclass
class LocalJobs:
    """The jobs this command started, and what it needs to start more."""
    argv: list[str]  # the worker command line every job runs
    logs: Path
    need: int  # bytes one job's dearest model needs
    available: int | None  # bytes of memory there are
    auto: bool = False  # started by grow(), once the first points show it pays
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, count: int) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            path = self.logs / f"job-{len(self.procs) + 1}.log"
            with path.open("a") as out:
                self.procs.append(subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL, start_new_session=True))
        log(f"  {len(self.procs) + 1} jobs train this grid (this process and {len(self.procs)} more; their logs in "
            f"{self.logs})")

    @property
    def undecided(self) -> bool:
        """auto, and no job started yet: only then is the grid's status worth reading."""
        return self.auto and not self.procs

    def grow(self, per_point_s: float, status) -> None:
        """At the first point's pace, each progress line and after each point: auto starts the jobs it
        pays to, once."""
        if self.undecided:
            more = auto_jobs(per_point_s, status.left + status.waiting, cpu.cores(), self.need, self.available) - 1
            if more > 0:
                self.start(more)

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def finish(self) -> None:
        """Wait for the jobs to run out of points; say which ended badly."""
        for k, p in enumerate(self.procs, 1):
            if p.wait() not in (0, 1, 130):  # 1: some points failed, which the command reports itself
                log(f"  job {k} ended with exit code {p.returncode}; its log: {self.logs / f'job-{k}.log'}")

    def interrupt(self) -> None:
        """Pass a Ctrl-C on to every job, once, and wait for them to stop (their running points
        are then FAIL 'interrupted', resumable); a job still training after STOP_WAIT_S is killed."""
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_WAIT_S
        for p in self.procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()  # its point is re-queued as 'worker lost' by the next run
                p.wait()


def stop_with_parent(poll_s: float = 1.0) -> None:
    """In a job: a Ctrl-C to itself when the command that started it is gone (killed), so that a
    killed command leaves no orphan training on; the point in hand is then FAIL 'interrupted'."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True, name="stop-with-parent").start()


def worker_argv(url: str, study: str, out: Path, root: Path | None, cache_dir: str | None, compile_mode: str | None,
                threads: int | None) -> list[str]:
    """The `worker` command of one job; `root`: a workflow's folder, whose artifact store the
    stage's trials use."""
    argv = [sys.executable, "-m", "dropout_decay.study", "worker", *([str(root)] if root else []), "--storage", url,
            "--study", study, "--output-dir", str(out), "--as-job"]
    for flag, value in (("--cache-dir", cache_dir), ("--compile", compile_mode), ("--threads", threads)):
        if value is not None:
            argv += [flag, str(value)]
    return argv
