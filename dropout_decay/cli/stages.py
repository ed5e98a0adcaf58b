"""Run one stage (screen, confirm, probe, stream) from flags or from a stage file under studies/."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..common.errors import UsageError
from ..common.interrupts import doing
from .drive import RUNS_DIR, drive, new_run_dir
from .parsing import check_run_flags, stage_parser


def launch(stage: str, args: argparse.Namespace, argv: list[str]) -> int:
    from ..report.artefacts import export
    from ..data.prepare import prepare_cache
    from ..common.console import log
    from ..training.device import select_device
    from ..sweep.estimate import describe, step_seconds
    from ..sweep.handoff import lock_model
    from ..sweep.provenance import build_config
    from ..sweep.recovery import requeue_failed
    from ..sweep.runner import find_previous_run
    from ..sweep.flags import settings_from_args
    from ..sweep.settings import resolve
    from ..sweep.storage import open_storage, open_study, sqlite_url

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
        if stage == "stream":
            from .dryrun import decay_means  # torch and the rest load after Ctrl-C is handled (main.py)

            print(decay_means(s, cache.manifest["vocab_size"]))
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


def run_file(rest: list[str], argv: list[str]) -> int:
    from ..sweep.studyfiles import load_study_file

    if not rest or rest[0].startswith("-"):
        raise UsageError("run needs a study file name, e.g. run quickstart")
    data = load_study_file(rest[0])
    stage = data.pop("stage")
    ap = stage_parser(stage, f"python -m dropout_decay.study run {rest[0]}")
    ap.set_defaults(**data)
    return launch(stage, ap.parse_args(rest[1:]), argv)
