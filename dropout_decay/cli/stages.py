"""Run one stage (screen, confirm, probe, stream) from flags or from a stage file under studies/."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..common.errors import UsageError
from ..common.files import check_output_dir
from ..common.interrupts import doing
from .drive import RUNS_DIR, drive, new_run_dir
from .parsing import PROG, check_run_flags, stage_parser


def launch(stage: str, args: argparse.Namespace, argv: list[str]) -> int:
    from ..report.artefacts import export
    from ..data.prepare import prepare_cache
    from ..common.console import log
    from ..training.device import select_device
    from ..sweep.estimate import describe, micro_batches, step_seconds
    from ..sweep.handoff import lock_model
    from ..sweep.provenance import build_config
    from ..sweep.recovery import requeue_failed
    from ..sweep.runner import find_previous_run
    from ..sweep.flags import settings_from_args
    from ..sweep.settings import resolve
    from ..sweep.storage import open_storage, open_study, sqlite_url

    check_run_flags(args)
    if args.output_dir:
        check_output_dir(Path(args.output_dir))
    s, lock = lock_model(settings_from_args(stage, args))
    device = select_device(s.device)  # before any model is built
    doing("caching")
    cache = prepare_cache(s.data_source())
    doing("starting")
    s = resolve(s, cache)
    micro_batches(s, cache.manifest["vocab_size"])  # a memory budget no micro-batch meets: refused before the study
    config = build_config(s, cache, device, shlex.join(argv), lock, args.threads)
    name = args.study_name or f"{stage}-{config['fingerprint'][:8]}"
    if args.dry_run:
        vocab = cache.manifest["vocab_size"]
        print(f"{stage}: grid {config['grid_size']} points = " + " x ".join(f"{len(v)} {k}" for k, v in config["grid"].items()))
        if stage == "stream":
            from .dryrun import decay_means  # torch and the rest load after Ctrl-C is handled (main.py)

            print(decay_means(s, vocab))
        print(f"estimate on {device.name} ({device.note}):\n{describe(s, step_seconds(s, vocab, device.name, args.threads), vocab)}")
        return 0
    out = Path(args.output_dir) if args.output_dir else (
        None if args.storage else find_previous_run(RUNS_DIR, stage, config["fingerprint"]))
    out = out or new_run_dir(stage)
    check_output_dir(out)
    refuse_another_run(out, name, config["fingerprint"], bool(args.storage))
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


def refuse_another_run(out: Path, name: str, fingerprint: str, own_storage: bool) -> None:
    """A folder that holds another run stays as it is: its CSV, HTML and study are that run's.
    Rerunning the command that made it (same grid, same fingerprint) resumes it instead."""
    import json

    from ..sweep.storage import study_names_read_only

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
    from ..sweep.studyfiles import load_study_file

    if rest[:1] in (["-h"], ["--help"]):
        from ..sweep.settings import STUDIES_DIR

        names = ", ".join(sorted(p.stem for p in STUDIES_DIR.glob("*.toml") if "stage =" in p.read_text()))
        print(f"usage: run NAME [FLAGS]\n\nRun the stage file studies/NAME.toml (or a path to one); flags override "
              f"its keys. `run NAME --help` lists that stage's flags.\n\nstage files: {names}")
        return 0
    if not rest or rest[0].startswith("-"):
        raise UsageError("run needs a study file name, e.g. run quickstart (run --help lists them)")
    data = load_study_file(rest[0])
    stage = data.pop("stage")
    ap = stage_parser(stage, f"{PROG} run {rest[0]}")
    ap.set_defaults(**data)
    return launch(stage, ap.parse_args(rest[1:]), argv)
