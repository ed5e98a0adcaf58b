"""The one path every command that trains takes: a stage, from its plan to its artefacts.

`screen`/`confirm`/`probe`/`stream`, `run NAME`, each stage of a `workflow`, `resume`/`worker`
and `replay` build a `StagePlan` and call `run_stage`; they differ only in what they put in it:

    resolve_stage()   settings -> data -> data-dependent defaults -> memory check -> the config
    run_stage()       open (or create) the study -> re-queue what a dead run left -> train its
                      points here (sweep/runner) -> write its artefacts -> analyse it

A plan without `resolved` continues a study that exists, on its stored settings and data.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Callable

from ..common import doing, shield


def runs_dir() -> Path:
    """Where runs live by default: runs/ under the folder the command runs in."""
    return Path("runs")


def new_run_dir(prefix: str) -> Path:
    """runs/<prefix>-<time>, with a suffix when a run of the same second already has it."""
    base = runs_dir() / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


@dataclass(frozen=True)
class Resolved:
    """A stage's settings with every default filled against its data, the data, and the config
    its study stores."""
    settings: object  # design.Settings
    cache: object  # data.TokenCache
    config: dict


@dataclass(frozen=True)
class StagePlan:
    """What a command hands `run_stage`."""
    storage: object  # an open Optuna storage
    url: str  # the storage as the user named it (for the log)
    name: str  # the study's name
    out: Path  # where its artefacts go
    device: object  # training.DeviceChoice
    label: str  # how the log names this run
    resolved: Resolved | None = None  # None: the stored study's own settings and data
    root: Path | None = None  # the run folder holding plotly.js and the artifact store (default: out)
    threads: int | None = None
    compile: str | None = None  # instead of the settings' (worker: this machine's choice)
    jobs: int | None = 1  # local processes training the grid (None: auto, jobs.py)
    as_job: bool = False  # one of another command's jobs: train, write no artefacts
    retry_failed: bool = False  # also re-queue points that failed deterministically
    cache_dir: str | None = None  # a stored study's data on this machine (default: the study's own)
    export_first: bool = False  # write the artefacts of what is stored before training
    on_open: Callable[[object, dict], None] = lambda study, config: None  # once the study is open, before training


@dataclass(frozen=True)
class StageResult:
    study: object  # optuna.Study
    settings: object  # design.Settings
    code: int  # 0 done, 1 some points failed, 130 interrupted
    status: object  # sweep.GridStatus
    seconds: float  # this run's wall time

    @cached_property
    def analysis(self):
        """Everything report.analyse derives from the study, computed when first asked for."""
        from ..report import analyse

        return analyse(self.study)


def resolve_stage(s, device, command: str, lock: dict | None = None, threads: int | None = None, jobs: int | None = 1,
                  **extra) -> Resolved:
    """Settings checked against the data they name (and `jobs` models of them against memory),
    and the config a new study stores (with `extra` keys such as the handoff that chose them)."""
    from ..data import prepare_cache
    from ..design import resolve
    from ..sweep import build_config

    jobs_memory(s, s.vocab_size, device.name, jobs)  # from the shapes alone, before the data is built or a model is
    doing("caching")
    cache = prepare_cache(s.data_source())
    doing("starting")
    s = resolve(s, cache)
    return Resolved(s, cache, build_config(s, cache, device, command, lock, threads) | extra)


def stored_stage(study, device=None, cache_dir: str | None = None) -> Resolved:
    """A stored study's own settings and its data on this machine: the local cache, else one built
    from the study's corpus; refused unless it is exactly the data the study began with."""
    from ..common import UsageError
    from ..data import load_cache, prepare_cache
    from ..design import Settings
    from ..sweep import check_fits, data_identity, load_config

    config = load_config(study)
    s = Settings.from_dict(config["settings"])
    cache_dir = cache_dir or s.cache_dir
    doing("caching")
    try:
        cache = load_cache(cache_dir, s.vocab_size)
    except UsageError:
        cache = prepare_cache(replace(s.data_source(), cache_dir=cache_dir, use_cached=False))
    if s.fingerprint(data_identity(cache)) != config["fingerprint"]:
        raise UsageError(f"the cache in {cache_dir} is not the data study {study.study_name} began with")
    if device is not None:
        check_fits(s, cache.manifest["vocab_size"], device.name)
    return Resolved(s, cache, config)


def run_stage(plan: StagePlan) -> StageResult:
    """Open (or create) the plan's study, train what is left of its grid here, write its
    artefacts and analyse it (see the module doc)."""
    from ..common import log
    from ..report import export
    from ..sweep import grid_status, open_study, requeue_failed

    doing("creating")
    study = open_study(plan.storage, plan.name, plan.resolved.config if plan.resolved else None)
    resolved = plan.resolved or stored_stage(study, plan.device, plan.cache_dir)
    doing("ready")
    plan.on_open(study, resolved.config)
    plan.out.mkdir(parents=True, exist_ok=True)  # only once the storage has accepted the study
    requeued = requeue_failed(study, plan.retry_failed)
    log(f"{plan.label}: study {plan.name} ({study.sampler.size} points) in {plan.url}; output {plan.out}; {plan.device.note}")
    if requeued:
        log(f"re-queued {requeued} point(s) left failed or interrupted by an earlier run")
    if plan.export_first:
        export(study, plan.out, plan.root)
    t0 = time.perf_counter()
    settings = replace(resolved.settings, compile=plan.compile) if plan.compile else resolved.settings
    code = drive(study, settings, resolved.cache, plan)
    return StageResult(study, resolved.settings, code, grid_status(study, study.sampler.size), time.perf_counter() - t0)


def drive(study, s, cache, plan: StagePlan) -> int:
    """Train the study's points here (and in its local jobs) until none is left, then write its
    artefacts into the plan's folder."""
    from ..common import log
    from ..report import export
    from ..sweep import PointRunner, cpu, describe_point, fail_own_running, failure_lines, grid_status, work

    out, root, device = plan.out, plan.root, plan.device.name
    jobs = local_jobs(study, s, cache, plan)

    def early(point_s: float) -> None:  # auto: the first point's progress already shows whether jobs pay
        if jobs and jobs.undecided:  # the storage is read only while the answer can change
            jobs.grow(point_s, grid_status(study, study.sampler.size))

    runner = PointRunner(s, cache, device, on_start=lambda p: log(f"  training {describe_point(p)}"),
                         on_progress=early, threads=lambda: cpu.share(plan.threads), artifacts=root or out)
    cpu.keep_freed_memory()
    try:
        doing("training")
        status = work(study, runner, after_point=jobs.grow if jobs else lambda *_: None,
                      jobs=lambda: 1 + (jobs.alive() if jobs else 0))
        if jobs:
            jobs.finish()
    except KeyboardInterrupt:
        shield()  # a second Ctrl-C must not tear what follows
        if jobs:
            jobs.interrupt()
        fail_own_running(study, "interrupted")
        if not plan.as_job:
            export(study, out, root)
        log(f"interrupted: the running point is marked failed ('interrupted'); artefacts in {out}; "
            "rerun the same command to resume")
        return 130
    if plan.as_job:
        return 1 if status.failed else 0
    doing("exporting")
    written = export(study, out, root)
    answer = json.loads(written["export.json"].read_text())["answer"]
    log(f"done: {status.complete}/{status.size} complete, {status.failed} failed; wrote {len(written)} files in {out}")
    log(f"answer: {answer}\nreport: {out / 'report.html'}")
    if status.failed:  # the artefacts hold what finished; the run did not do what was asked
        for line in failure_lines(study):
            log(line)
        return 1
    return 0


def local_jobs(study, s, cache, plan: StagePlan):
    """The plan's local jobs (jobs.py): started now for --jobs N, later (`grow`) for auto; None
    for a job itself or a single process."""
    from ..sweep import cpu
    from .jobs import LocalJobs, worker_argv

    if plan.as_job or plan.jobs == 1 or (plan.jobs is None and (plan.device.name != "cpu" or cpu.cores() < 2)):
        return None
    need, available = jobs_memory(s, cache.manifest["vocab_size"], plan.device.name, plan.jobs)
    jobs = LocalJobs(worker_argv(plan.url, study.study_name, plan.out, plan.root, s.cache_dir, s.compile, plan.threads),
                     plan.out / "jobs", need, available, auto=plan.jobs is None)
    if plan.jobs is not None:
        jobs.start(plan.jobs - 1)
    return jobs


def jobs_memory(s, vocab_size: int, device: str, jobs: int | None) -> tuple[int, int | None]:
    """(bytes one job's dearest model needs, bytes available); refuses --jobs N whose N models
    do not fit together (auto, None, takes what fits)."""
    from ..sweep import check_fits
    from ..training import gib
    from .jobs import check_jobs_fit

    needs, available = check_fits(s, vocab_size, device)
    need = max(n.total for n in needs.values())
    if jobs is not None:
        check_jobs_fit(jobs, need, available, gib)
    return need, available
