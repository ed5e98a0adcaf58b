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

from .errors import UsageError

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
    cache = prepare_cache(s.data_source())
    s = resolve(s, cache)
    config = build_config(s, cache, device, shlex.join(argv), lock, args.threads)
    name = args.study_name or f"{stage}-{config['fingerprint'][:8]}"
    if args.dry_run:
        print(f"{stage}: grid {config['grid_size']} points = " + " x ".join(f"{len(v)} {k}" for k, v in config["grid"].items()))
        print(f"estimate on {device.name} ({device.note}):\n{describe(s, step_seconds(s, cache.manifest['vocab_size'], device.name))}")
        return 0
    out = Path(args.output_dir) if args.output_dir else (
        None if args.storage else find_previous_run(RUNS_DIR, stage, config["fingerprint"]))
    out = out or RUNS_DIR / f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.storage and not (out / "study.db").exists():
        out.mkdir(parents=True, exist_ok=True)  # a new folder cannot hold a clashing study
    study = open_study(open_storage(args.storage or sqlite_url(out), args.heartbeat), name, config)
    out.mkdir(parents=True, exist_ok=True)  # only once the storage has accepted the study
    requeued = requeue_failed(study, args.retry_failed)
    log(f"{stage}: study {name} in {args.storage or sqlite_url(out)}; output {out}; {device.note}")
    if requeued:
        log(f"re-queued {requeued} point(s) left failed or interrupted by an earlier run")
    export(study, out)
    return drive(study, s, cache, device.name, out, args.threads)


def drive(study, s, cache, device: str, out: Path, threads: int | None = None, root: Path | None = None) -> int:
    """Train the study's points here until none is left, then write its artefacts into `out`.
    `root` is the run folder holding plotly.js and the artifact store (default: `out`)."""
    from . import cpu
    from .artefacts import export
    from .console import log
    from .objective import PointRunner
    from .runner import describe, work

    runner = PointRunner(s, cache, device, on_start=lambda p: log(f"  training {describe(p)}"),
                         threads=lambda: cpu.share(threads), artifacts=root or out)
    cpu.keep_freed_memory()
    cpu.register()
    try:
        status = work(study, runner)
    except KeyboardInterrupt:
        export(study, out, root)
        log(f"interrupted: the running point is marked failed ('interrupted'); artefacts in {out}; "
            "rerun the same command to resume")
        return 130
    finally:
        cpu.unregister()
    written = export(study, out, root)
    log(f"done: {status.complete}/{status.size} complete, {status.failed} failed; wrote {len(written)} files in {out}")
    return 0


def tool_parser(command: str, doc: str) -> Parser:
    ap = Parser(prog=f"python -m dropout_decay.study {command}", description=doc)
    ap.add_argument("run_dir", nargs="?", help="run folder holding study.db")
    ap.add_argument("--storage", help="Optuna storage URL instead of a run folder")
    ap.add_argument("--study", help="study name (needed with --storage)")
    ap.add_argument("--output-dir", help="where to write artefacts (default: the run folder)")
    return ap


def locate(args: argparse.Namespace):
    """(study, run folder) from RUN_DIR or --storage/--study. A run folder's study.db may also
    hold replays; without --study the original study is meant."""
    import optuna

    from .storage import HEARTBEAT_S, open_storage, open_study, sqlite_url

    heartbeat = getattr(args, "heartbeat", HEARTBEAT_S)
    if args.storage:
        if not args.study:
            raise UsageError("--storage needs --study NAME")
        study = open_study(open_storage(args.storage, heartbeat, must_exist=True), args.study)
        return study, Path(args.output_dir or args.run_dir or f"{RUNS_DIR}/{args.study}")
    if not args.run_dir:
        raise UsageError("give a run folder, or --storage URL --study NAME")
    run = Path(args.run_dir)
    if not (run / "study.db").is_file():
        raise UsageError(f"{run} holds no study.db")
    storage = open_storage(sqlite_url(run), heartbeat, must_exist=True)
    if args.study:
        study = open_study(storage, args.study)
        return study, Path(args.output_dir or (run if is_original(study) else run / args.study))
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    originals = [s for s in summaries if "replay_of" not in (s.user_attrs.get("config") or {})]
    if len(originals) != 1:
        names = ", ".join(s.study_name for s in originals)
        raise UsageError(f"{run}/study.db holds {len(originals)} studies; pick one with --study ({names})")
    return open_study(storage, originals[0].study_name), Path(args.output_dir or run)


def is_original(study) -> bool:
    from .provenance import load_config

    return "replay_of" not in load_config(study)


def join(command: str, rest: list[str]) -> int:
    """`resume` and `worker`: continue a study from what its storage says, on this machine.

    Any number of processes or machines may join one study: the storage hands each a different
    grid point, a dead worker's point is re-queued (same host: at once; elsewhere: once its
    heartbeat is stale), and each worker stops when nothing is left to train."""
    from .console import log
    from .device import select_device
    from .provenance import load_config
    from .recovery import requeue_failed
    from .settings import Settings
    from .storage import HEARTBEAT_S

    ap = tool_parser(command, "Join a study and train its unvisited points until the grid is done.")
    ap.add_argument("--heartbeat", type=int, default=HEARTBEAT_S,
                    help=f"seconds between heartbeats; a point silent for twice this is retried (default {HEARTBEAT_S})")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: the cores shared among this machine's workers)")
    ap.add_argument("--cache-dir", help="token cache on this machine (default: the study's; built from its corpus if missing)")
    args = ap.parse_args(rest)
    check_run_flags(args)
    study, out = locate(args)
    config = load_config(study)
    s = Settings.from_dict(config["settings"])
    device = select_device(s.device)
    cache = join_cache(s, config, args.cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    requeue_failed(study)
    log(f"{command}: study {study.study_name} ({study.sampler.size} points); output {out}; {device.note}")
    return drive(study, s, cache, device.name, out, args.threads)


def join_cache(s, config: dict, cache_dir: str | None = None):
    """The study's data on this machine: the local cache, else one built from the study's corpus;
    refused unless it is exactly the data the study began with."""
    from dataclasses import replace

    from .cache import load_cache, prepare_cache
    from .provenance import data_identity
    from .settings import Settings

    cache_dir = cache_dir or s.cache_dir
    try:
        cache = load_cache(cache_dir, s.vocab_size)
    except UsageError:
        cache = prepare_cache(replace(s.data_source(), cache_dir=cache_dir, use_cached=False))
    if Settings.from_dict(config["settings"]).fingerprint(data_identity(cache)) != config["fingerprint"]:
        raise UsageError(f"the cache in {cache_dir} is not the data this study began with")
    return cache


def replay(rest: list[str], argv: list[str]) -> int:
    """Re-run a stored grid (or part of it) into a new study in the same storage and report,
    per point, the change in val loss and whether it is bitwise identical."""
    from .console import log
    from .device import select_device
    from .provenance import build_config, load_config
    from .replay import replay_name, replay_rows, replay_settings, replay_summary
    from .storage import open_study

    ap = tool_parser("replay", "Re-run a stored grid, or part of it, into a new study in the same storage.")
    ap.add_argument("--seeds", nargs="+", type=int, help="replay only these seeds")
    ap.add_argument("--models", nargs="+", help="replay only these model labels (e.g. winner)")
    ap.add_argument("--arms", nargs="+", help="stream: replay only these arms (static:0.1, decay names)")
    ap.add_argument("--dropout-rates", nargs="+", type=float, help="static sweeps: replay only these rates")
    ap.add_argument("--device", help="run on another device than the stored one (then expect differences)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: the cores shared among this machine's workers)")
    args = ap.parse_args(rest)
    study, out = locate(args)
    config = load_config(study)
    s = replay_settings(config, args.seeds, args.models, args.arms, args.dropout_rates, args.device)
    device = select_device(s.device)
    cache = join_cache(s, config)
    name = replay_name(study._storage, study.study_name)
    new = build_config(s, cache, device, shlex.join(argv), config.get("lock"), args.threads) | {"replay_of": study.study_name}
    target = open_study(study._storage, name, new)
    folder = (out if is_original(study) else out.parent) / name
    folder.mkdir(parents=True, exist_ok=True)
    log(f"replay: {new['grid_size']} of {config['grid_size']} points of {study.study_name} into study {name}; output {folder}")
    code = drive(target, s, cache, device.name, folder, args.threads)
    rows = replay_rows(study, target)
    same, worst = replay_summary(rows)
    print(f"replay {name}: {same}/{len(rows)} points bitwise identical, largest |delta val loss| {worst:.3g}; "
          f"per point in {folder / 'replay.csv'}")
    return code


def dashboard(rest: list[str]) -> int:
    import optuna

    from .artefacts import analyse
    from .attachments import ARTIFACTS
    from .dashboard import free_port, serve
    from .notes import refresh_note
    from .storage import open_storage, sqlite_url

    ap = tool_parser("dashboard", "Serve optuna-dashboard for a run on 127.0.0.1 (it has no authentication).")
    ap.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1, 1..65535, or 0 for any free one (default 8080)")
    args = ap.parse_args(rest)
    port = free_port(args.port)
    if not args.run_dir and not args.storage:
        runs = sorted(RUNS_DIR.glob("**/study.db"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise UsageError(f"no run under {RUNS_DIR}/; give a run folder or --storage URL")
        args.run_dir = str(runs[-1].parent)
    url = args.storage or sqlite_url(Path(args.run_dir))
    storage = open_storage(url, must_exist=True)
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if "config" in summary.user_attrs:  # notes of runs exported before they existed, too
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            refresh_note(study, analyse(study)["note"])
    artifacts = Path(args.output_dir or args.run_dir or ".") / ARTIFACTS
    print(f"optuna-dashboard for {url} at http://127.0.0.1:{port}/dashboard/ (Ctrl-C stops it)", flush=True)
    try:
        serve(storage, port, artifacts)
    except KeyboardInterrupt:
        pass
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


def status(rest: list[str]) -> int:
    from .runner import print_status

    study, _ = locate(tool_parser("status", "Where a study stands.").parse_args(rest))
    print_status(study)
    return 0


def export_command(rest: list[str]) -> int:
    from .artefacts import export

    study, out = locate(tool_parser("export", "Rebuild every artefact from storage.").parse_args(rest))
    written = export(study, out)
    print(f"wrote {len(written)} files in {out}: {', '.join(written)}")
    return 0


def cache_command(rest: list[str]) -> int:
    from .cache import prepare_cache
    from .settings import Settings, add_stage_flags, check, settings_from_args

    ap = Parser(prog="python -m dropout_decay.study cache", description="Build or check the token cache.")
    add_stage_flags(ap)
    s = settings_from_args("screen", ap.parse_args(rest))
    cache = prepare_cache(s.data_source())
    print(f"{cache.paths.tokens}: {cache.tokens.size:,} tokens ({cache.n_train:,} train, {cache.val.size:,} val; "
          f"documents {cache.layout.words()})")
    return 0


def dispatch(command: str, rest: list[str], argv: list[str]) -> int:
    if command in ("screen", "confirm", "probe", "stream"):
        return launch(command, stage_parser(command, f"python -m dropout_decay.study {command}").parse_args(rest), argv)
    if command == "run":
        return run_file(rest, argv)
    if command == "workflow":
        from .workflow import workflow_command

        return workflow_command(rest, argv)
    if command in ("resume", "worker"):
        return join(command, rest)
    if command == "replay":
        return replay(rest, argv)
    if command == "dashboard":
        return dashboard(rest)
    if command == "status":
        return status(rest)
    if command == "export":
        return export_command(rest)
    if command == "cache":
        return cache_command(rest)
    raise UsageError(f"unknown command {command!r} (choose from {', '.join(COMMANDS)})")


def quiet_libraries() -> None:
    """We say what failed and why ourselves; Optuna's own logging and warnings would repeat it."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(__doc__)
            return 0
        quiet_libraries()
        return dispatch(argv[0], argv[1:], ["python -m dropout_decay.study", *argv])
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted before anything was written; nothing to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
