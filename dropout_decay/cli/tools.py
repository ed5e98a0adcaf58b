"""The commands that work on studies that already exist: resume, worker, status, export,
replay, dashboard, and cache (which builds or checks a token cache only)."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import replace
from pathlib import Path

from ..common import Stage, UsageError
from .drive import Resolved, StagePlan, run_stage, runs_dir, stored_stage
from .parsing import Parser, add_machine_flags, check_run_flags, prog


def tool_parser(command: str, doc: str) -> Parser:
    ap = Parser(prog=f"{prog()} {command}", description=doc)
    ap.add_argument("run_dir", nargs="?", help="run folder holding study.db")
    ap.add_argument("--storage", help="Optuna storage URL instead of a run folder")
    ap.add_argument("--study", help="study name (needed with --storage)")
    ap.add_argument("--output-dir", help="where to write artefacts (default: the run folder)")
    return ap


def stage_folder(run: Path, study_name: str) -> Path | None:
    """In a workflow folder, the subfolder of the stage whose study this is."""
    record = run / "workflow.json"
    if not record.is_file():
        return None
    stages = json.loads(record.read_text()).get("stages", {})
    return next((run / e["folder"] for e in stages.values() if e.get("study") == study_name), None)


def locate(args: argparse.Namespace):
    """(study, output folder) from RUN_DIR or --storage/--study. A run folder's study.db may also
    hold replays; without --study the original study is meant. In a workflow folder, a stage's
    output folder is its subfolder."""
    import optuna

    from ..sweep import HEARTBEAT_S, open_storage, open_study, sqlite_url

    heartbeat = getattr(args, "heartbeat", HEARTBEAT_S)
    if args.storage:
        if not args.study:
            raise UsageError("--storage needs --study NAME")
        study = open_study(open_storage(args.storage, heartbeat, must_exist=True), args.study)
        return study, Path(args.output_dir or args.run_dir or f"{runs_dir()}/{args.study}")
    if not args.run_dir:
        raise UsageError("give a run folder, or --storage URL --study NAME")
    run = Path(args.run_dir)
    if not (run / "study.db").is_file():
        raise UsageError(f"{run} holds no study.db")
    storage = open_storage(sqlite_url(run), heartbeat, must_exist=True)
    if args.study:
        study = open_study(storage, args.study)
        home = stage_folder(run, args.study) or run
        return study, Path(args.output_dir or (home if is_original(study) else run / args.study))
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    originals = [s for s in summaries if "replay_of" not in (s.user_attrs.get("config") or {})]
    if len(originals) != 1:
        names = ", ".join(s.study_name for s in originals)
        raise UsageError(f"{run}/study.db holds {len(originals)} studies; pick one with --study ({names})")
    return open_study(storage, originals[0].study_name), Path(args.output_dir or run)


def is_original(study) -> bool:
    from ..sweep import load_config

    return "replay_of" not in load_config(study)


def storage_url(args: argparse.Namespace) -> str:
    """The storage a tool's arguments name, as the user named it."""
    from ..sweep import sqlite_url

    return args.storage or sqlite_url(Path(args.run_dir))


def join(command: str, rest: list[str]) -> int:
    """`resume` and `worker`: continue a study from what its storage says, on this machine.

    Any number of processes or machines may join one study: the storage hands each a different
    grid point, a dead worker's point is re-queued (same host: at once; elsewhere: once its
    heartbeat is stale), and each worker stops when nothing is left to train."""
    from ..design import Settings
    from ..sweep import HEARTBEAT_S, load_config, storage_of
    from ..training import select_device

    ap = tool_parser(command, "Join a study and train its unvisited points until the grid is done.")
    ap.add_argument("--heartbeat", type=int, default=HEARTBEAT_S,
                    help=f"seconds between heartbeats; a point silent for twice this is retried (default {HEARTBEAT_S})")
    add_machine_flags(ap, jobs=False)
    ap.add_argument("--as-job", action="store_true", help=argparse.SUPPRESS)  # started by another command's --jobs
    ap.add_argument("--cache-dir", help="token cache on this machine (default: the study's; built from its corpus if missing)")
    args = ap.parse_args(rest)
    check_run_flags(args)
    if args.as_job:
        from .jobs import stop_with_parent

        stop_with_parent()
    study, out = locate(args)
    device = select_device(Settings.from_dict(load_config(study)["settings"]).device)
    run = Path(args.run_dir) if args.run_dir else None
    root = run if run and stage_folder(run, study.study_name) else None  # a workflow stage: the workflow's store
    return run_stage(StagePlan(storage_of(study), storage_url(args), study.study_name, out, device, command, root=root,
                               threads=args.threads, cache_dir=args.cache_dir, compile=args.compile,
                               as_job=args.as_job)).code


def replay(rest: list[str], argv: list[str]) -> int:
    """Re-run a stored grid (or part of it) into a new study in the same storage and report,
    per point, the change in val loss and whether it is bitwise identical."""
    from ..sweep import (build_config, check_fits, load_config, replay_name, replay_rows, replay_settings, replay_summary,
                         storage_of)
    from ..training import select_device

    ap = tool_parser("replay", "Re-run a stored grid, or part of it, into a new study in the same storage.")
    ap.add_argument("--seeds", nargs="+", type=int, help="replay only these seeds")
    ap.add_argument("--models", nargs="+", help="replay only these model labels (e.g. winner)")
    ap.add_argument("--arms", nargs="+", help="stream: replay only these arms (static:0.1, decay names)")
    ap.add_argument("--dropout-rates", nargs="+", type=float, help="static sweeps: replay only these rates")
    ap.add_argument("--device", help="run on another device than the stored one (then expect differences)")
    add_machine_flags(ap)
    args = ap.parse_args(rest)
    study, out = locate(args)
    config = load_config(study)
    s = replay_settings(config, args.seeds, args.models, args.arms, args.dropout_rates, args.device)
    s = replace(s, compile=args.compile or s.compile)
    device = select_device(s.device)
    cache = stored_stage(study).cache  # the original's data, checked
    check_fits(s, cache.manifest["vocab_size"], device.name)
    new = build_config(s, cache, device, shlex.join(argv), config.get("lock"), args.threads) | {"replay_of": study.study_name}
    name = replay_name(storage_of(study), study.study_name)
    folder = (out if is_original(study) else out.parent) / name
    label = f"replay of {study.study_name} ({new['grid_size']} of {config['grid_size']} points)"
    done = run_stage(StagePlan(storage_of(study), storage_url(args), name, folder, device, label, Resolved(s, cache, new),
                               threads=args.threads, jobs=args.jobs))
    rows = replay_rows(study, done.study)
    print(f"replay {name}: {replay_summary(rows)}; per point in {folder / 'replay.csv'}")
    return done.code


def dashboard(rest: list[str]) -> int:
    import optuna

    from ..report import analyse, free_port, refresh_note, serve
    from ..sweep import ARTIFACTS, open_storage, sqlite_url

    ap = tool_parser("dashboard", "Serve optuna-dashboard for a run on 127.0.0.1 (it has no authentication).")
    ap.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1, 1..65535, or 0 for any free one (default 8080)")
    args = ap.parse_args(rest)
    port = free_port(args.port)
    if not args.run_dir and not args.storage:
        runs = sorted(runs_dir().glob("**/study.db"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise UsageError(f"no run under {runs_dir()}/; give a run folder or --storage URL")
        args.run_dir = str(runs[-1].parent)
    url = args.storage or sqlite_url(Path(args.run_dir))
    storage = open_storage(url, must_exist=True)
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if "config" in summary.user_attrs:  # notes of runs exported before they existed, too
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            refresh_note(study, analyse(study).note)
    artifacts = Path(args.output_dir or args.run_dir or ".") / ARTIFACTS
    print(f"optuna-dashboard for {url} at http://127.0.0.1:{port}/dashboard/ (Ctrl-C stops it)", flush=True)
    try:
        serve(storage, port, artifacts)
    except KeyboardInterrupt:
        pass
    return 0


def status(rest: list[str]) -> int:
    """One study, or every stage of a workflow folder."""
    import optuna

    from ..sweep import open_storage, open_study, print_status, sqlite_url

    args = tool_parser("status", "Where a study stands (every stage of a workflow folder).").parse_args(rest)
    if args.run_dir and not args.study and (Path(args.run_dir) / "workflow.json").is_file():
        storage = open_storage(sqlite_url(Path(args.run_dir)), must_exist=True)
        for name in optuna.get_all_study_names(storage):
            print_status(open_study(storage, name))
        return 0
    study, _ = locate(args)
    print_status(study)
    return 0


def export_command(rest: list[str]) -> int:
    """One study's artefacts; for a workflow folder, every stage's and the index."""
    from ..report import analyse, export, index_figures, write_index
    from ..sweep import open_storage, open_study, sqlite_url

    args = tool_parser("export", "Rebuild every artefact from storage (every stage of a workflow folder).").parse_args(rest)
    run = Path(args.run_dir) if args.run_dir else None
    if run and not args.study and (run / "workflow.json").is_file():
        storage = open_storage(sqlite_url(run), must_exist=True)
        record, figures = json.loads((run / "workflow.json").read_text()), {}
        for stage, entry in record["stages"].items():
            study = open_study(storage, entry["study"])
            written = export(study, run / entry["folder"], run)
            figures[stage] = index_figures(stage, analyse(study))
            print(f"wrote {len(written)} files in {run / entry['folder']}")
        write_index(run, record, figures)
        print(f"wrote {run / 'index.html'}")
        return 0
    study, out = locate(args)
    written = export(study, out, run if run and stage_folder(run, study.study_name) else None)
    print(f"wrote {len(written)} files in {out}: {', '.join(written)}")
    return 0


def cache_command(rest: list[str]) -> int:
    from ..data import prepare_cache
    from .flags import add_data_flags, settings_from_args

    ap = Parser(prog=f"{prog()} cache", description="Build or check the token cache.")
    add_data_flags(ap)
    s = settings_from_args(Stage.SCREEN, ap.parse_args(rest))
    cache = prepare_cache(s.data_source())
    print(f"{cache.paths.tokens}: {cache.tokens.size:,} tokens ({cache.n_train:,} train, {cache.val.size:,} val, "
          f"{cache.test.size:,} test; "
          f"documents {cache.layout.words()})")
    return 0


