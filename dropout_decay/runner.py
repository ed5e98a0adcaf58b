"""Run a stage as one Optuna study: create or resume it, then train grid points until none is left.

The study storage is the source of truth. The study's user attrs hold the whole resolved
configuration; each trial's user attrs hold its metrics, its trace and, if it failed, why.
Any number of workers (processes, machines) can run `work()` on the same study.

Recovery, in order, before every point:
* RUNNING trials whose worker process on this host is gone are failed and re-queued at once;
* RUNNING trials whose heartbeat went stale (another machine died) are failed by Optuna and
  re-queued by our heartbeat callback;
* on start, points whose last trial failed for a transient reason (interrupted, worker lost)
  are re-queued; deterministic failures (divergence) keep their FAIL unless --retry-failed.
A trial that finds its grid point already owned (the tail race between workers) trains nothing
and is PRUNED with `surplus_to` (grid.surplus_to).
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
import sqlalchemy
import tokenizers
import torch
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from . import NANOCHAT_ATTRIBUTION, __version__
from .cache import TokenCache, log
from .device import DeviceChoice
from .errors import UsageError
from .grid import FastGridSampler, GridStatus, grid_status, search_space, surplus_to, trials_by_point
from .model import ModelSpec, parse_model_spec
from .schedules import Schedule, parse_decays, static
from .settings import Settings
from .train import Stage, TrainingDiverged, train

HEARTBEAT_S = 60
POLL_S = 5.0
TRANSIENT = ("interrupted", "worker lost")
HOST = socket.gethostname()

optuna.logging.set_verbosity(optuna.logging.ERROR)  # we say what failed and why ourselves
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Queue the failed trial's grid point again as a WAITING trial with the same grid_id."""
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING,
        system_attrs={k: trial.system_attrs[k] for k in ("grid_id", "search_space") if k in trial.system_attrs},
        user_attrs={"retry_of": trial.number, "retry_reason": reason},
    ))


def _requeue_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    requeue(study, trial, "worker lost (heartbeat stale)")


def _sqlite_wal(dbapi_connection, _record) -> None:
    """WAL + synchronous=NORMAL: readers never block the writer and a commit costs no fsync.
    A killed process loses nothing committed; a power cut may lose the last commits, never
    the file's consistency. (Halves a trial's write cost here: scripts/bench_study.py.)"""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, must_exist: bool = False) -> RDBStorage:
    """SQLite gets WAL and a generous lock timeout (several local workers); every RDB gets heartbeats.
    `must_exist`: refuse a SQLite path that holds no file instead of creating an empty storage."""
    sqlite = url.startswith("sqlite")
    if sqlite and must_exist and not Path(url.split(":///", 1)[-1]).is_file():
        raise UsageError(f"no storage file at {url.split(':///', 1)[-1]}")
    shown = _without_password(url)
    if url.startswith(("postgresql://", "postgres://")):  # one driver whatever SQLAlchemy's default: psycopg 3
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = {"connect_args": {"timeout": 120}} if sqlite else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            storage = RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_s,
                                 grace_period=2 * heartbeat_s, heartbeat_stale_trial_callback=_requeue_stale)
            break
        except sqlalchemy.exc.DBAPIError as e:
            if not isinstance(e, sqlalchemy.exc.IntegrityError) and "already exists" not in str(e):
                raise UsageError(f"cannot open storage {shown}: {_first_line(e)}") from None
            # Several processes created the schema of a new storage at once (workers started
            # together): one won; opening again finds the schema in place.
            time.sleep(0.2 * (attempt + 1))
        except Exception as e:  # SQLAlchemy raises many kinds; the user needs one line
            raise UsageError(f"cannot open storage {shown}: {_first_line(e)}") from None
    else:
        raise UsageError(f"cannot open storage {shown}: its schema could not be created")
    if sqlite:
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_wal)
        storage.engine.dispose()  # connections opened during set-up get the pragmas on reconnect
    return storage


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _without_password(url: str) -> str:
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: SQLAlchemy will say so when opening it
        return url


def _engine(storage):
    """The SQLAlchemy engine behind an RDB storage (also when wrapped in Optuna's cache), else None."""
    return getattr(getattr(storage, "_backend", storage), "engine", None)


def _release(storage) -> None:
    """Close pooled connections, so a refusal leaves no SQLite side files (-wal, -shm) behind."""
    engine = _engine(storage)
    if engine is not None:
        engine.dispose()


def checkpoint(study: optuna.Study) -> None:
    """Fold SQLite's write-ahead log into study.db, so the file alone is the whole study
    (copy it, mail it, open it in optuna-dashboard). No-op for other storages."""
    engine = _engine(study._storage)
    if engine is not None and engine.url.get_backend_name() == "sqlite":
        with engine.connect() as con:
            con.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def environment(device: DeviceChoice) -> dict:
    return {
        "python": platform.python_version(), "torch": torch.__version__, "optuna": optuna.__version__,
        "numpy": np.__version__, "tokenizers": tokenizers.__version__, "dropout_decay": __version__,
        "os": platform.platform(), "machine": platform.machine(), "device": device.name,
    }


def data_identity(cache: TokenCache) -> dict:
    m = cache.manifest
    return {k: m[k] for k in ("vocab_size", "tokenizer_sha256", "token_count", "train_tokens", "val_tokens")} | {
        "corpus_sha256": m["corpus"]["sha256"]}


def build_config(s: Settings, cache: TokenCache, device: DeviceChoice, command: str, lock: dict | None) -> dict:
    space = search_space(s)
    specs = [parse_model_spec(m) for m in s.models]
    return {
        "stage": s.stage,
        "command": command,
        "settings": s.to_dict(),
        "fingerprint": s.fingerprint(data_identity(cache)),
        "grid": space,
        "grid_size": math.prod(len(v) for v in space.values()),
        "grid_seed": s.grid_seed,
        "models": [{"label": m.label, "shape": m.shape, "depth": m.depth, "heads": m.heads, "width": m.width,
                    "parameters": m.n_params(cache.manifest["vocab_size"])} for m in specs],
        "data": {"cache_dir": s.cache_dir, "tokens_file": cache.paths.tokens.name,
                 "tokenizer_file": cache.paths.tokenizer.name, "manifest": cache.manifest},
        "environment": environment(device),
        "compliance": {"device": device.name, "mps_compliant": device.mps_compliant, "note": device.note},
        "lock": lock,
        "code_version": __version__,
        "attribution": NANOCHAT_ATTRIBUTION,
    }


def load_config(study: optuna.Study) -> dict:
    config = study.user_attrs.get("config")
    if not config:
        raise UsageError(f"study {study.study_name} was not made by dropout-decay (no config in its user attrs)")
    return config


def open_study(storage: RDBStorage, name: str, config: dict | None = None) -> optuna.Study:
    """Load `name`, or create it from `config`. A name that holds another grid is refused."""
    exists = name in optuna.study.get_all_study_names(storage)
    if not exists and config is None:
        _release(storage)
        raise UsageError(f"no study {name!r} in this storage")
    if exists:
        stored = load_config(optuna.load_study(study_name=name, storage=storage))
        if config is not None and stored["fingerprint"] != config["fingerprint"]:
            _release(storage)
            raise UsageError(f"study {name!r} already holds a different grid or data "
                             f"(fingerprint {stored['fingerprint']} vs {config['fingerprint']}); "
                             "pick another --study-name or --output-dir")
        config = stored
    sampler = FastGridSampler(config["grid"], seed=config["grid_seed"])
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, direction="minimize",
                                load_if_exists=True)
    if not exists:
        study.set_user_attr("config", config)
    return study


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim_dead_local(study: optuna.Study) -> int:
    """Fail and re-queue RUNNING trials whose worker was a process on this host that is gone."""
    n = 0
    for t in study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if host == HOST and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                study._storage.set_trial_user_attr(t._trial_id, "fail_reason", f"worker lost (pid {pid} died)")
                if study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                    requeue(study, t, f"worker lost (pid {pid} died)")
                    n += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker got there first
    return n


def requeue_failed(study: optuna.Study, all_failures: bool = False) -> int:
    """Re-queue points whose latest trial failed and nothing else holds them."""
    n = 0
    for trials in trials_by_point(study).values():
        if any(t.state != TrialState.FAIL for t in trials):
            continue
        last = max(trials, key=lambda t: t.number)
        reason = str(last.user_attrs.get("fail_reason", "worker lost"))
        if all_failures or reason.startswith(TRANSIENT):
            requeue(study, last, f"resume after: {reason}")
            n += 1
    return n


@dataclass
class PointRunner:
    """The objective: train the grid point Optuna hands over and record everything on the trial."""

    settings: Settings
    cache: TokenCache
    device: str
    schedules: dict[str, Schedule] = field(init=False)
    specs: dict[str, ModelSpec] = field(init=False)
    on_start: Callable[[dict], None] = lambda point: None
    interrupted: bool = False  # Ctrl-C arrived during a point: it is FAIL('interrupted'); stop

    def __post_init__(self):
        s = self.settings
        self.specs = {spec.label: spec for spec in map(parse_model_spec, s.models)}
        arms = [static(p) for p in s.dropout_rates] + (parse_decays(s.decays) if s.stage == "stream" else [])
        self.schedules = {a.name: a for a in arms}

    def stages(self, point: dict) -> list[Stage]:
        s = self.settings
        if s.stage == "stream":
            return [Stage(cap, s.stage_steps) for cap in s.stream_token_caps]
        return [Stage(point["tokens"], s.steps)]

    def __call__(self, trial: optuna.Trial) -> float:
        owner = surplus_to(trial.study, trial._trial_id, trial.number)
        if owner is not None:
            trial.set_user_attr("surplus_to", owner.number)
            raise optuna.TrialPruned(f"its grid point belongs to trial {owner.number}")
        space = search_space(self.settings)
        point = {name: trial.suggest_categorical(name, values) for name, values in space.items()}
        trial.set_user_attr("worker", f"{HOST}:{os.getpid()}")
        self.on_start(point)
        schedule = self.schedules[point["arm"]] if "arm" in point else static(point["dropout"])
        rows: list[dict] = []

        def trace(row: dict) -> None:
            rows.append(row)
            if row["kind"] == "eval":
                trial.report(row["val_loss"], row["step"])

        t0 = time.perf_counter()
        try:
            stages = train(self.specs[point["model"]], schedule, self.stages(point), self.cache,
                           self.settings.train_config(), point["seed"], self.device, trace)
        except TrainingDiverged as e:
            return self._fail(trial, rows, f"diverged: {e}")
        except KeyboardInterrupt:
            self.interrupted = True
            trial.study.stop()
            return self._fail(trial, rows, "interrupted")
        except Exception as e:  # a bug or the device gave out: keep the grid going, show the traceback
            log(traceback.format_exc().rstrip())
            return self._fail(trial, rows, f"error: {type(e).__name__}: {e}")
        final = stages[-1]
        for key in ("train_loss", "val_loss", "gap"):
            trial.set_user_attr(key, final[key])
        trial.set_user_attr("stages", stages)
        trial.set_user_attr("trace", rows)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        return final["val_loss"]

    @staticmethod
    def _fail(trial: optuna.Trial, rows: list[dict], reason: str) -> float:
        """Record why, then return NaN: Optuna marks the trial FAIL without a traceback."""
        trial.set_user_attr("fail_reason", reason)
        trial.set_user_attr("trace", rows)
        log(f"  failed: {reason}")
        return float("nan")


def describe(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items())


def work(study: optuna.Study, objective: Callable[[optuna.Trial], float], poll_s: float = POLL_S,
         say: Callable[[str], None] = log) -> GridStatus:
    """Train points until the grid is done, waiting for points other live workers hold."""
    size = study.sampler.size
    started, mine = time.perf_counter(), 0
    while True:
        fail_stale_trials(study)
        reclaim_dead_local(study)
        status = grid_status(study, size)
        if status.left or status.waiting:
            ran: list[FrozenTrial] = []
            study.optimize(objective, n_trials=1, gc_after_trial=False, callbacks=[lambda _, t: ran.append(t)])
            if getattr(objective, "interrupted", False):
                raise KeyboardInterrupt
            if not ran or ran[0].state == TrialState.PRUNED:  # surplus at the tail: someone else has it
                continue
            mine += 1
            status = grid_status(study, size)
            per_point = (time.perf_counter() - started) / mine
            remaining = status.left + status.waiting + status.running
            finished = status.complete + status.failed
            say(f"[{_bar(finished / size)}] {finished}/{size} complete {status.complete}, failed {status.failed}, "
                f"running {status.running}, left {status.left + status.waiting} | "
                f"{per_point:.1f}s/point, ETA {_clock(per_point * remaining)}")
        elif status.running:
            time.sleep(poll_s)
        else:
            return status


def _bar(fraction: float, width: int = 20) -> str:
    filled = round(fraction * width)
    return "#" * filled + "." * (width - filled)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def find_previous_run(runs_dir: Path, stage: str, fingerprint: str) -> Path | None:
    """The latest run folder of the same experiment, so rerunning a command resumes it."""
    hits = []
    for cfg in runs_dir.glob(f"{stage}-*/config.json"):
        try:
            if json.loads(cfg.read_text()).get("fingerprint") == fingerprint and (cfg.parent / "study.db").exists():
                hits.append(cfg.parent)
        except (OSError, ValueError):
            continue
    return max(hits, default=None)


def sqlite_url(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'study.db').resolve()}"


def print_status(study: optuna.Study, say: Callable[[str], None] = print) -> GridStatus:
    status = grid_status(study, study.sampler.size)
    config = load_config(study)
    mean = sum(status.durations) / len(status.durations) if status.durations else float("nan")
    remaining = status.left + status.waiting + status.running
    eta = _clock(mean * remaining) if status.durations else "unknown (no point finished yet)"
    say(f"study {study.study_name} ({config['stage']}, {config['compliance']['note']})")
    say(f"  grid {status.size}: complete {status.complete}, running {status.running}, failed {status.failed}, "
        f"queued {status.waiting}, left {status.left}")
    say(f"  mean {mean:.1f}s per point; ETA for one worker: {eta}")
    for trials in trials_by_point(study).values():
        if all(t.state == TrialState.FAIL for t in trials):
            last = max(trials, key=lambda t: t.number)
            say(f"  failed: trial {last.number} {describe(last.params)}: {last.user_attrs.get('fail_reason', 'worker lost')}")
    return status
