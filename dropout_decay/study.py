"""`python -m dropout_decay.study`: run, resume, inspect and export stage studies.

    screen | confirm | probe | stream [FLAGS]   run a stage (rerunning the same command resumes it)
    run NAME [FLAGS]                    run the stage file studies/NAME.toml, flags override it
    workflow CONFIG [--dry-run]         screen -> select -> confirm -> (probe) -> lock -> stream, in one
                                        resumable folder with index.html and workflow.json
    resume RUN_DIR                      continue a stopped run
    worker --storage URL --study NAME   join a study from another process or machine and train
                                        its unvisited points until the grid is done
    status RUN_DIR                      what is done / running / stale / failed / left, with an ETA
    export RUN_DIR                      rebuild every artefact from the storage alone
    replay RUN_DIR [--seeds/--arms/...] re-run (part of) a stored grid into a new study; report
                                        per point the change in val loss and bitwise identity
    dashboard [RUN_DIR] [--port 8080]   optuna-dashboard on 127.0.0.1, each study with its verdict note
    cache [--corpus ...]                build (or check) the token cache only

RUN_DIR may be replaced by `--storage URL --study NAME` for any Optuna RDB storage.
Bad input prints one line and exits 2; Ctrl-C marks the running point failed ('interrupted'),
writes the artefacts and exits 130; the next run resumes it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

from .errors import UsageError
from .interrupts import doing, exit_with, listen, message, release, shield

RUNS_DIR = Path("runs")
COMMANDS = ("screen", "confirm", "probe", "stream", "run", "workflow", "resume", "worker", "status", "export",
            "replay", "dashboard", "cache")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other refusal."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def add_run_flags(ap: argparse.ArgumentParser) -> None:
    from .storage import HEARTBEAT_S

    g = ap.add_argument_group("run")
    g.add_argument("--output-dir", help="run folder (default: the previous run of the same experiment, else runs/<stage>-<time>)")
    g.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<output-dir>/study.db); "
                                     "postgresql://... lets several machines work one grid")
    g.add_argument("--study-name", help="study name (default <stage>-<fingerprint>)")
    g.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, help=f"seconds between worker heartbeats (default {HEARTBEAT_S})")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: the cores shared among this machine's workers)")
    g.add_argument("--retry-failed", action="store_true", help="also re-queue points that failed deterministically (e.g. diverged)")
    g.add_argument("--dry-run", action="store_true", help="print the grid size and a time estimate, run nothing")


def stage_parser(stage: str, prog: str) -> Parser:
    from .settings import add_stage_flags

    ap = Parser(prog=prog, description=f"Run the {stage} stage as one Optuna study.")
    add_stage_flags(ap)
    add_run_flags(ap)
    return ap


def check_run_flags(args: argparse.Namespace) -> None:
    if args.heartbeat <= 0:
        raise UsageError(f"--heartbeat must be positive, got {args.heartbeat}")
    if args.threads is not None and args.threads <= 0:
        raise UsageError(f"--threads must be positive, got {args.threads}")


def launch(stage: str, args: argparse.Namespace, argv: list[str]) -> int:
    from .artefacts import export
    from .cache import prepare_cache
    from .console import log
    from .device import select_device
    from .estimate import describe, step_seconds
    from .handoff import lock_model
    from .provenance import build_config
    from .recovery import requeue_failed
    from .runner import find_previous_run
    from .settings import resolve, settings_from_args
    from .storage import open_storage, open_study, sqlite_url

    check_run_flags(args)
    s, lock = lock_model(settings_from_args(stage, args))
    device = select_device(s.device)  # before any model is built
    doing("caching")
    cache = prepare_cache(s.data_source())
    doing("starting")
    s = resolve(s, cache)
    config = build_config(s, cache, device, shlex.join(argv), lock, args.threads)
    name = args.study_name or f"{stage}-{config['fingerprint'][:8]}"
    if args.dry_run:
        print(f"{stage}: grid {config['grid_size']} points = " + " x ".join(f"{len(v)} {k}" for k, v in config["grid"].items()))
        print(f"estimate on {device.name} ({device.note}):\n{describe(s, step_seconds(s, cache.manifest['vocab_size'], device.name))}")
        return 0
    out = Path(args.output_dir) if args.output_dir else (
        None if args.storage else find_previous_run(RUNS_DIR, stage, config["fingerprint"]))
    out = out or new_run_dir(stage)
    if not args.storage and not (out / "study.db").exists():
        out.mkdir(parents=True, exist_ok=True)  # a new folder cannot hold a clashing study
    doing("creating")
    study = open_study(open_storage(args.storage or sqlite_url(out), args.heartbeat), name, config)
    doing("ready")
    out.mkdir(parents=True, exist_ok=True)  # only once the storage has accepted the study
    requeued = requeue_failed(study, args.retry_failed)
    log(f"{stage}: study {name} in {args.storage or sqlite_url(out)}; output {out}; {device.note}")
    if requeued:
        log(f"re-queued {requeued} point(s) left failed or interrupted by an earlier run")
    export(study, out)
    return drive(study, s, cache, device.name, out, args.threads)


def new_run_dir(prefix: str) -> Path:
    """runs/<prefix>-<time>, with a suffix when a run of the same second already has it."""
    base = RUNS_DIR / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def drive(study, s, cache, device: str, out: Path, threads: int | None = None, root: Path | None = None) -> int:
    """Train the study's points here until none is left, then write its artefacts into `out`.
    `root` is the run folder holding plotly.js and the artifact store (default: `out`)."""
    from . import cpu
    from .artefacts import export
    from .console import log
    from .objective import PointRunner
    from .recovery import fail_own_running
    from .runner import describe, work

    runner = PointRunner(s, cache, device, on_start=lambda p: log(f"  training {describe(p)}"),
                         threads=lambda: cpu.share(threads), artifacts=root or out)
    cpu.keep_freed_memory()
    try:
        doing("training")
        status = work(study, runner)
    except KeyboardInterrupt:
        shield()  # a second Ctrl-C must not tear what follows
        fail_own_running(study, "interrupted")
        export(study, out, root)
        log(f"interrupted: the running point is marked failed ('interrupted'); artefacts in {out}; "
            "rerun the same command to resume")
        return 130
    doing("exporting")
    written = export(study, out, root)
    log(f"done: {status.complete}/{status.size} complete, {status.failed} failed; wrote {len(written)} files in {out}")
    return 0


def run_file(rest: list[str], argv: list[str]) -> int:
    from .settings import load_study_file

    if not rest or rest[0].startswith("-"):
        raise UsageError("run needs a study file name, e.g. run quickstart")
    data = load_study_file(rest[0])
    stage = data.pop("stage")
    ap = stage_parser(stage, f"python -m dropout_decay.study run {rest[0]}")
    ap.set_defaults(**data)
    return launch(stage, ap.parse_args(rest[1:]), argv)


def dispatch(command: str, rest: list[str], argv: list[str]) -> int:
    if command in ("screen", "confirm", "probe", "stream"):
        return launch(command, stage_parser(command, f"python -m dropout_decay.study {command}").parse_args(rest), argv)
    if command == "run":
        return run_file(rest, argv)
    if command == "workflow":
        from .workflow import workflow_command

        return workflow_command(rest, argv)
    from . import tools

    if command in ("resume", "worker"):
        return tools.join(command, rest)
    if command == "replay":
        return tools.replay(rest, argv)
    if command == "dashboard":
        return tools.dashboard(rest)
    if command == "status":
        return tools.status(rest)
    if command == "export":
        return tools.export_command(rest)
    if command == "cache":
        return tools.cache_command(rest)
    raise UsageError(f"unknown command {command!r} (choose from {', '.join(COMMANDS)})")


def quiet_libraries() -> None:
    """We say what failed and why ourselves; Optuna's own logging and warnings would repeat it."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def run_command(body: Callable[[], int]) -> int:
    """Run one command: bad input is one line and exit 2, Ctrl-C one line and exit 130."""
    listen()
    try:
        quiet_libraries()
        return body()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        shield()
        print(message(), file=sys.stderr)
        return 130
    finally:
        release()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    return run_command(lambda: dispatch(argv[0], argv[1:], ["python -m dropout_decay.study", *argv]))

if __name__ == "__main__":
    exit_with(main())
