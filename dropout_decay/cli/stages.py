"""Run one stage (screen, confirm, probe, stream) from flags or from a stage file under studies/."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..common import Stage, UsageError, check_output_dir, doing
from .drive import Resolved, StagePlan, new_run_dir, resolve_stage, run_stage, runs_dir
from .parsing import check_run_flags, prog, stage_parser


def launch(stage: Stage, args: argparse.Namespace, argv: list[str]) -> int:
    """A stage from its flags: dry run, or the study trained here (rerunning the command resumes it)."""
    stage = Stage(stage)  # scripts/run_experiments.py names it by its string
    from ..design import lock_model
    from ..sweep import check_url, find_previous_run, open_storage, sqlite_url
    from ..training import select_device
    from .flags import settings_from_args

    check_run_flags(args)
    if args.output_dir:
        check_output_dir(Path(args.output_dir))
    if args.storage:
        check_url(args.storage)  # before the data is built
    s, lock = lock_model(settings_from_args(stage, args))
    device = select_device(s.device)  # before any model is built
    resolved = resolve_stage(s, device, shlex.join(argv), lock, args.threads, args.jobs)
    config = resolved.config
    name = args.study_name or f"{stage}-{config['fingerprint'][:8]}"
    if args.dry_run:
        return dry_run(resolved, device, args.threads, args.jobs)
    out = Path(args.output_dir) if args.output_dir else (
        None if args.storage else find_previous_run(runs_dir(), stage, config["fingerprint"]))
    out = out or new_run_dir(stage)
    check_output_dir(out)
    refuse_another_run(out, name, config["fingerprint"], bool(args.storage))
    if not args.storage and not (out / "study.db").exists():
        out.mkdir(parents=True, exist_ok=True)  # a new folder cannot hold a clashing study
    url = args.storage or sqlite_url(out)
    doing("creating")  # opening a new storage writes its schema
    plan = StagePlan(open_storage(url, args.heartbeat), url, name, out, device, str(stage), resolved,
                     threads=args.threads, jobs=args.jobs, retry_failed=args.retry_failed, export_first=True)
    return run_stage(plan).code


def dry_run(resolved: Resolved, device, threads: int | None, requested: int | None = 1) -> int:
    """The grid and its time estimate (with the local jobs the run would start); nothing is
    trained or written."""
    from ..common import clock
    from ..sweep import check_fits, cpu, describe_estimate, grid_seconds, step_seconds
    from .jobs import JOB_START_S

    s, config, vocab = resolved.settings, resolved.config, resolved.cache.manifest["vocab_size"]
    print(f"{s.stage}: grid {config['grid_size']} points = " + " x ".join(f"{len(v)} {k}" for k, v in config["grid"].items()))
    if s.stage.is_stream:
        from .dryrun import decay_means  # torch and the rest load after Ctrl-C is handled (main.py)

        print(decay_means(s, vocab))
    if s.stage is Stage.MAP:
        from .dryrun import map_cost

        print(map_cost(s))
    available = check_fits(s, vocab, device.name)[1]  # passed already in resolve_stage: here for the figure
    per_step = step_seconds(s, vocab, device.name, threads)
    print(f"estimate on {device.name} ({device.note}):\n{describe_estimate(s, per_step, vocab, available)}")
    jobs = planned_jobs(s, per_step, vocab, device.name, requested, config["grid_size"])
    if jobs > 1:  # each job on its share of the cores, timed so; each compiles its own graphs
        each = threads or max(1, cpu.cores() // jobs)
        shared = step_seconds(s, vocab, device.name, each)
        compiling = sum(cost.compile_seconds for cost in shared.values())
        total = (grid_seconds(s, shared) - compiling) / jobs + compiling + JOB_START_S
        print(f"  total with {jobs} local jobs (--jobs; {each} thread{'s' if each > 1 else ''} each): {clock(total)}")
    return 0


def planned_jobs(s, per_step, vocab: int, device: str, requested: int | None, points: int) -> int:
    """The processes a run of this grid would train it with (--jobs N, or what auto would start
    after the first point, jobs.py)."""
    from ..sweep import cpu, grid_seconds
    from .drive import jobs_memory
    from .jobs import auto_jobs

    if requested is not None or device != "cpu" or cpu.cores() < 2:
        return requested or 1
    need, available = jobs_memory(s, vocab, device, None)
    per_point = grid_seconds(s, per_step) / max(points, 1)
    return auto_jobs(per_point, points - 1, cpu.cores(), need, available)


def refuse_another_run(out: Path, name: str, fingerprint: str, own_storage: bool) -> None:
    """A folder that holds another run stays as it is: its CSV, HTML and study are that run's.
    Rerunning the command that made it (same grid, same fingerprint) resumes it instead."""
    import json

    from ..sweep import study_names_read_only

    if (out / "workflow.json").exists():
        raise UsageError(f"{out} is a workflow's folder; resume it with `workflow`, or give this stage a new --output-dir")
    try:
        stored = json.loads((out / "config.json").read_text()).get("fingerprint")
    except (OSError, ValueError):
        stored = None
    others = [] if own_storage else [n for n in study_names_read_only(out / "study.db") if n != name]
    if (stored and stored != fingerprint) or others:
        raise UsageError(f"{out} already holds another grid ({'study ' + others[0] if others else 'fingerprint ' + stored[:8]}); "
                         "its files stay as they are: give this grid a new --output-dir, or rerun that run's own command to resume it")


def run_file(rest: list[str], argv: list[str]) -> int:
    from ..design import load_study_file

    if rest[:1] in (["-h"], ["--help"]):
        from ..design import STUDIES_DIR

        names = ", ".join(sorted(p.stem for p in STUDIES_DIR.glob("*.toml") if "stage =" in p.read_text()))
        print(f"usage: run NAME [FLAGS]\n\nRun the stage file studies/NAME.toml (or a path to one); flags override "
              f"its keys. `run NAME --help` lists that stage's flags.\n\nstage files: {names}")
        return 0
    if not rest or rest[0].startswith("-"):
        raise UsageError("run needs a study file name, e.g. run quickstart (run --help lists them)")
    data = load_study_file(rest[0])
    stage = Stage(data.pop("stage"))
    ap = stage_parser(stage, f"{prog()} run {rest[0]}")
    ap.set_defaults(**data)
    return launch(stage, ap.parse_args(rest[1:]), argv)
