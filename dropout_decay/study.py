"""`python -m dropout_decay.study`: run, resume, inspect and export stage studies.

    screen | confirm | stream [FLAGS]   run a stage (rerunning the same command resumes it)
    run NAME [FLAGS]                    run the stage file studies/NAME.toml, flags override it
    resume RUN_DIR                      continue a stopped run
    worker --storage URL --study NAME   join a study from another process or machine and train
                                        its unvisited points until the grid is done
    status RUN_DIR                      what is done / running / failed / left, with an ETA
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
import json
import shlex
import socket
import sys
import time
from pathlib import Path

import optuna
import torch

from .artefacts import analyse, export
from .cache import TokenCache, load_cache, log, prepare_cache
from .dashboard import refresh_note, serve
from .device import select_device
from .errors import UsageError
from .model import GPT, parse_model_spec
from .replay import replay_name, replay_rows, replay_settings, replay_summary
from .runner import (PointRunner, build_config, data_identity, describe, find_previous_run, load_config, open_storage,
                     open_study, print_status, requeue_failed, sqlite_url, work, HEARTBEAT_S)
from .settings import STAGES, Settings, add_stage_flags, load_study_file, settings_from_args
from .train import TrainConfig, make_optimizer

RUNS_DIR = Path("runs")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other refusal."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def add_run_flags(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("run")
    g.add_argument("--output-dir", help="run folder (default: the previous run of the same experiment, else runs/<stage>-<time>)")
    g.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<output-dir>/study.db); "
                                     "postgresql://... lets several machines work one grid")
    g.add_argument("--study-name", help="study name (default <stage>-<fingerprint>)")
    g.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, help=f"seconds between worker heartbeats (default {HEARTBEAT_S})")
    g.add_argument("--retry-failed", action="store_true", help="also re-queue points that failed deterministically (e.g. diverged)")
    g.add_argument("--dry-run", action="store_true", help="print the grid size and a time estimate, run nothing")


def stage_parser(stage: str, prog: str) -> Parser:
    ap = Parser(prog=prog, description=f"Run the {stage} stage as one Optuna study.")
    add_stage_flags(ap)
    add_run_flags(ap)
    return ap


def resolve_data_limits(s: Settings, cache: TokenCache) -> None:
    """Fill data-dependent defaults and refuse limits the cache cannot meet."""
    n = cache.n_train
    if s.stage == "stream":
        s.stream_token_caps = s.stream_token_caps or [n // 8, n // 4, n // 2, n]
        limits, flag = s.stream_token_caps, "--stream-token-caps"
    else:
        s.token_limits = s.token_limits or [n]
        limits, flag = s.token_limits, "--token-limits"
    too_big = [x for x in limits if x > n]
    if too_big:
        raise UsageError(f"{flag} {too_big[0]:,} exceeds the {n:,} training tokens in {cache.paths.tokens}")
    if min(limits) < s.seq_len + 1 or cache.val.size < s.seq_len + 1:
        raise UsageError(f"--seq-len {s.seq_len} needs pools of at least {s.seq_len + 1} tokens")


def resolve_lock(s: Settings) -> dict | None:
    if s.stage != "stream":
        return None
    if not s.lock_from:
        spec = parse_model_spec(s.models[0])
        return {"source": "given by hand", "model": str(spec)}
    path = Path(s.lock_from) / "model_selection.json"
    try:
        selection = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UsageError(f"--lock-from {s.lock_from}: no readable model_selection.json") from None
    config_path = Path(s.lock_from) / "config.json"
    if not config_path.is_file() or json.loads(config_path.read_text()).get("stage") != "confirm":
        raise UsageError(f"--lock-from {s.lock_from} is not a confirm run")
    candidates = [r for r in selection if r["candidate"]]
    if not candidates:
        raise UsageError(f"--lock-from {s.lock_from}: no model there has an interior nonzero optimum")
    best = min(candidates, key=lambda r: r["best_val_loss"])
    s.models = [f"winner={best['model_shape']}"]
    return {"source": "confirm run", "run": str(Path(s.lock_from).resolve()), "model": s.models[0],
            "confirm_best_p": best["best_p"], "confirm_plateau": best["plateau"], "verdict": best["verdict"]}


def estimate(s: Settings, cache: TokenCache, device: str, grid_size: int) -> str:
    """Seconds per point from three timed steps of each model on the chosen device."""
    cfg: TrainConfig = s.train_config()
    steps = s.stage_steps * len(s.stream_token_caps) if s.stage == "stream" else s.steps
    n_evals = (steps // cfg.eval_every if cfg.eval_every else 0) + (len(s.stream_token_caps) if s.stage == "stream" else 1)
    per_model = []
    for text in s.models:
        torch.manual_seed(0)
        model = GPT(parse_model_spec(text), cache.manifest["vocab_size"], cfg.seq_len).to(device)
        opt = make_optimizer(model, cfg, device)
        x = torch.randint(0, cache.manifest["vocab_size"], (cfg.batch_size, cfg.seq_len + 1), device=device)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            model(x[:, :-1], x[:, 1:]).backward()
            opt.step()
            opt.zero_grad()
            float(model.lm_head.weight.detach()[0, 0])  # sync
            times.append(time.perf_counter() - t)
        step = min(times[1:])
        point = step * (steps + n_evals * 2 * cfg.eval_batches / 3)  # an eval batch costs ~1/3 of a step
        per_model.append((text, step, point))
    points_per_model = grid_size // len(s.models)
    total = sum(p for _, _, p in per_model) * points_per_model
    lines = [f"  {m}: {st * 1e3:.0f} ms/step -> {p / 60:.1f} min/point x {points_per_model} points" for m, st, p in per_model]
    return "\n".join(lines + [f"  total for one worker: {total / 3600:.2f} h"])


def launch(stage: str, args: argparse.Namespace, argv: list[str]) -> int:
    s = settings_from_args(stage, args)
    lock = resolve_lock(s)
    device = select_device(s.device)  # before any model is built
    cache = prepare_cache(s.cache_dir, s.vocab_size, s.use_cached_data, s.corpus, s.corpus_glob)
    resolve_data_limits(s, cache)
    config = build_config(s, cache, device, shlex.join(argv), lock)
    name = args.study_name or f"{stage}-{config['fingerprint'][:8]}"
    if args.dry_run:
        print(f"{stage}: grid {config['grid_size']} points = " + " x ".join(f"{len(v)} {k}" for k, v in config["grid"].items()))
        print(f"estimate on {device.name} ({device.note}):\n{estimate(s, cache, device.name, config['grid_size'])}")
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
    return drive(study, s, cache, device.name, out)


def drive(study, s: Settings, cache: TokenCache, device: str, out: Path) -> int:
    runner = PointRunner(s, cache, device, on_start=lambda p: log(f"  training {describe(p)}"))
    try:
        status = work(study, runner)
    except KeyboardInterrupt:
        export(study, out)
        log(f"interrupted: the running point is marked failed ('interrupted'); artefacts in {out}; "
            "rerun the same command to resume")
        return 130
    written = export(study, out)
    log(f"done: {status.complete}/{status.size} complete, {status.failed} failed; wrote {', '.join(written)} in {out}")
    return 0


def locate(args: argparse.Namespace):
    """(study, run folder) from RUN_DIR or --storage/--study. A run folder's study.db may also
    hold replays; without --study the original study is meant."""
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
    storage = open_storage(sqlite_url(run), heartbeat)
    if args.study:
        study = open_study(storage, args.study)
        return study, Path(args.output_dir or (run if is_original(study) else run / args.study))
    originals = [s for s in optuna.get_all_study_summaries(storage, include_best_trial=False) if "replay_of" not in s.user_attrs.get("config", {})]
    if len(originals) != 1:
        names = ", ".join(s.study_name for s in originals)
        raise UsageError(f"{run}/study.db holds {len(originals)} studies; pick one with --study ({names})")
    return open_study(storage, originals[0].study_name), Path(args.output_dir or run)


def is_original(study: optuna.Study) -> bool:
    return "replay_of" not in load_config(study)


def join(command: str, rest: list[str]) -> int:
    """`resume` and `worker`: continue a study from what its storage says, on this machine.

    Any number of processes or machines may join one study: the storage hands each a different
    grid point, a dead worker's point is re-queued (same host: at once; elsewhere: once its
    heartbeat is stale), and each worker stops when nothing is left to train."""
    ap = tool_parser(command, "Join a study and train its unvisited points until the grid is done.")
    ap.add_argument("--heartbeat", type=int, default=HEARTBEAT_S,
                    help=f"seconds between heartbeats; a point silent for twice this is retried (default {HEARTBEAT_S})")
    ap.add_argument("--cache-dir", help="token cache on this machine (default: the study's; built from its corpus if missing)")
    args = ap.parse_args(rest)
    study, out = locate(args)
    config = load_config(study)
    s = Settings.from_dict(config["settings"])
    device = select_device(s.device)
    cache = join_cache(s, config, args.cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    requeue_failed(study)
    log(f"{command}: study {study.study_name} ({study.sampler.size} points); output {out}; {device.note}")
    return drive(study, s, cache, device.name, out)


def join_cache(s: Settings, config: dict, cache_dir: str | None = None) -> TokenCache:
    """The study's data on this machine: the local cache, else one built from the study's corpus;
    refused unless it is exactly the data the study began with."""
    cache_dir = cache_dir or s.cache_dir
    try:
        cache = load_cache(cache_dir, s.vocab_size)
    except UsageError:
        cache = prepare_cache(cache_dir, s.vocab_size, False, s.corpus, s.corpus_glob)
    if Settings.from_dict(config["settings"]).fingerprint(data_identity(cache)) != config["fingerprint"]:
        raise UsageError(f"the cache in {cache_dir} is not the data this study began with")
    return cache


def replay(rest: list[str], argv: list[str]) -> int:
    """Re-run a stored grid (or part of it) into a new study in the same storage and report,
    per point, the change in val loss and whether it is bitwise identical."""
    ap = tool_parser("replay", "Re-run a stored grid, or part of it, into a new study in the same storage.")
    ap.add_argument("--seeds", nargs="+", type=int, help="replay only these seeds")
    ap.add_argument("--models", nargs="+", help="replay only these model labels (e.g. winner)")
    ap.add_argument("--arms", nargs="+", help="stream: replay only these arms (static:0.1, decay names)")
    ap.add_argument("--dropout-rates", nargs="+", type=float, help="screen/confirm: replay only these rates")
    ap.add_argument("--device", help="run on another device than the stored one (then expect differences)")
    args = ap.parse_args(rest)
    study, out = locate(args)
    config = load_config(study)
    s = replay_settings(config, args.seeds, args.models, args.arms, args.dropout_rates, args.device)
    device = select_device(s.device)
    cache = join_cache(s, config)
    name = replay_name(study._storage, study.study_name)
    new = build_config(s, cache, device, shlex.join(argv), config.get("lock")) | {"replay_of": study.study_name}
    target = open_study(study._storage, name, new)
    folder = (out if is_original(study) else out.parent) / name
    folder.mkdir(parents=True, exist_ok=True)
    log(f"replay: {new['grid_size']} of {config['grid_size']} points of {study.study_name} into study {name}; output {folder}")
    code = drive(target, s, cache, device.name, folder)
    rows = replay_rows(study, target)
    same, worst = replay_summary(rows)
    print(f"replay {name}: {same}/{len(rows)} points bitwise identical, largest |delta val loss| {worst:.3g}; "
          f"per point in {folder / 'replay.csv'}")
    return code


def dashboard(rest: list[str]) -> int:
    ap = tool_parser("dashboard", "Serve optuna-dashboard for a run on 127.0.0.1 (it has no authentication).")
    ap.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    args = ap.parse_args(rest)
    if not args.run_dir and not args.storage:
        runs = sorted(RUNS_DIR.glob("*/study.db"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise UsageError(f"no run under {RUNS_DIR}/; give a run folder or --storage URL")
        args.run_dir = str(runs[-1].parent)
    url = args.storage or sqlite_url(Path(args.run_dir))
    storage = open_storage(url, must_exist=True)
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if "config" in summary.user_attrs:  # notes of runs exported before they existed, too
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            refresh_note(study, analyse(study)["note"])
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", args.port))
    except OSError as e:
        raise UsageError(f"cannot serve on 127.0.0.1:{args.port}: {e.strerror}; pick another --port") from None
    print(f"optuna-dashboard for {url} at http://127.0.0.1:{args.port}/dashboard/ (Ctrl-C stops it)", flush=True)
    try:
        serve(storage, "127.0.0.1", args.port)
    except KeyboardInterrupt:
        pass
    return 0


def tool_parser(command: str, doc: str) -> Parser:
    ap = Parser(prog=f"python -m dropout_decay.study {command}", description=doc)
    ap.add_argument("run_dir", nargs="?", help="run folder holding study.db")
    ap.add_argument("--storage", help="Optuna storage URL instead of a run folder")
    ap.add_argument("--study", help="study name (needed with --storage)")
    ap.add_argument("--output-dir", help="where to write artefacts (default: the run folder)")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = "python -m dropout_decay.study"
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(__doc__)
            return 0
        command, rest = argv[0], argv[1:]
        if command in STAGES:
            return launch(command, stage_parser(command, f"{prog} {command}").parse_args(rest), [prog, *argv])
        if command == "run":
            if not rest or rest[0].startswith("-"):
                raise UsageError("run needs a study file name, e.g. run quickstart")
            data = load_study_file(rest[0])
            stage = data.pop("stage")
            ap = stage_parser(stage, f"{prog} run {rest[0]}")
            ap.set_defaults(**data)
            return launch(stage, ap.parse_args(rest[1:]), [prog, *argv])
        if command in ("resume", "worker"):
            return join(command, rest)
        if command == "replay":
            return replay(rest, [prog, *argv])
        if command == "dashboard":
            return dashboard(rest)
        if command == "status":
            study, _ = locate(tool_parser("status", "Where a study stands.").parse_args(rest))
            print_status(study)
            return 0
        if command == "export":
            study, out = locate(tool_parser("export", "Rebuild every artefact from storage.").parse_args(rest))
            written = export(study, out)
            print(f"wrote {', '.join(written)} in {out}")
            return 0
        if command == "cache":
            ap = Parser(prog=f"{prog} cache", description="Build or check the token cache.")
            add_stage_flags(ap)
            a = ap.parse_args(rest)
            cache = prepare_cache(a.cache_dir, a.vocab_size, a.use_cached_data, a.corpus, a.corpus_glob)
            print(f"{cache.paths.tokens}: {cache.tokens.size:,} tokens ({cache.n_train:,} train, {cache.val.size:,} val)")
            return 0
        raise UsageError(f"unknown command {command!r} (choose from {', '.join(STAGES)}, run, resume, worker, status, export, replay, dashboard, cache)")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
