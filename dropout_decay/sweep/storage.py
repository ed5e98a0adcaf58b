"""Optuna storages and studies: open them safely, create studies whole, fold SQLite's log back.

SQLite (the default, one file per run folder) gets WAL and a generous lock timeout so several
local workers can share it; every RDB storage gets heartbeats so a dead worker's point is
retried. A file that should already hold a storage is checked read-only first: a missing,
empty or foreign file is refused before SQLAlchemy could write a schema into it.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage

from ..common import UsageError
from .optuna_internals import FastGridSampler, engine_of, storage_of
from .provenance import load_config
from .recovery import requeue_stale
from .workers import worker_tag

HEARTBEAT_S = 60


def sqlite_url(out_dir: Path) -> str:
    return f"sqlite:///{(Path(out_dir) / 'study.db').resolve()}"


def sqlite_path(url: str) -> Path | None:
    return Path(url.split(":///", 1)[1]) if url.startswith("sqlite:///") else None


def _sqlite_wal(dbapi_connection, _record) -> None:
    """WAL + synchronous=NORMAL: readers never block the writer and a commit costs no fsync.
    A killed process loses nothing committed; a power cut may lose the last commits, never
    the file's consistency. (Halves a trial's write cost here: scripts/bench_study.py.)"""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_header(path: Path) -> bytes:
    """The first 16 bytes of a file: SQLITE_HEADER in a SQLite database, nothing in an empty file."""
    with open(path, "rb") as f:
        return f.read(16)


def check_storage_file(path: Path) -> None:
    """Refuse a path that does not hold an Optuna SQLite storage, reading it only."""
    if not path.is_file():
        raise UsageError(f"no storage file at {path}")
    header = sqlite_header(path)
    if not header:
        raise UsageError(f"{path} is empty, not a study storage; point at a run folder's study.db")
    if header != SQLITE_HEADER:
        raise UsageError(f"{path} is not a SQLite file, so not a study storage")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.Error as e:
        raise UsageError(f"{path} is an unreadable SQLite file ({e})") from None
    if "studies" not in tables:
        raise UsageError(f"{path} is a SQLite file but holds no Optuna studies")


def study_names_read_only(path: Path) -> list[str]:
    """The studies a SQLite storage file holds, read without writing a byte (no WAL pragma, no
    schema); [] for a file that is no storage, which opening it properly will then explain."""
    # Without a -wal file beside it everything is in the main file, and `immutable` reads it
    # without making -wal and -shm files; with one, a read-only connection uses the files there.
    live = Path(f"{path}-wal").exists()
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro{'' if live else '&immutable=1'}", uri=True, timeout=30)
        try:
            return [name for (name,) in con.execute("SELECT study_name FROM studies")]
        finally:
            con.close()
    except sqlite3.Error:
        return []


LOCK_PROBE_S = 15.0  # a worker holds SQLite's write lock for milliseconds; a holder this long is another program


def lock_probe_seconds() -> float:
    """How long to wait for SQLite's write lock before naming its holder (DROPOUT_DECAY_LOCK_WAIT_S overrides)."""
    return float(os.environ.get("DROPOUT_DECAY_LOCK_WAIT_S") or LOCK_PROBE_S)


def check_writable(path: Path) -> None:
    """One line, before anything is built or stored, when a SQLite storage at `path` could not be
    written: the path is a folder, the file or its folder refuses writes (permissions, an immutable
    file, a read-only mount), or another program holds the database's lock. Writes nothing: the
    file is opened for writing and closed, and the lock is asked for and given back."""
    where = f"storage {path}"
    if path.is_dir():
        raise UsageError(f"{where} is a folder, not a database file; name a file such as {path / 'study.db'}")
    folder = next((p for p in path.parents if p.exists()), Path("."))
    if not folder.is_dir():
        raise UsageError(f"{where} lies inside {folder}, which is a file; name a file in a folder")
    try:  # SQLite writes its -wal, -shm and journal files beside the database
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise UsageError(f"{where}: cannot write in its folder {folder} ({e.strerror}); choose another place") from None
    if not path.exists():
        return
    try:
        open(path, "r+b").close()
    except OSError as e:
        raise UsageError(f"{where} cannot be written ({e.strerror}{', an immutable or read-only file' if e.errno in (1, 13, 30) else ''}); "
                         "its contents are unchanged: make it writable, or name another file") from None
    _check_unlocked(path, where)


def _check_unlocked(path: Path, where: str) -> None:
    if sqlite_header(path) not in (SQLITE_HEADER, b""):
        return  # not a SQLite file: opening it says so
    try:
        wait = lock_probe_seconds()
        con = sqlite3.connect(path, timeout=wait, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
        finally:
            con.close()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            raise UsageError(f"{where} is locked by another program (still after {wait:g} s); close it, "
                             "then rerun: nothing was written") from None
        raise UsageError(f"{where} cannot be written ({e})") from None


def check_url(url: str) -> None:
    """Refuse, before any work, a `--storage` SQLite URL whose file could not be written."""
    path = sqlite_path(url)
    if path is not None:
        check_writable(path)


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, must_exist: bool = False) -> RDBStorage:
    """`must_exist`: refuse a SQLite path that holds no storage instead of creating one. A SQLite
    storage that could not be written is refused in one line first (`check_writable`)."""
    path = sqlite_path(url)
    if path is not None and must_exist:
        check_storage_file(path)
    if path is not None:
        check_writable(path)
    shown = _without_password(url)
    if url.startswith(("postgresql://", "postgres://")):  # one driver whatever SQLAlchemy's default: psycopg 3
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = {"connect_args": {"timeout": 120}} if path is not None else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            storage = RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_s,
                                 grace_period=2 * heartbeat_s, heartbeat_stale_trial_callback=requeue_stale)
            break
        except sqlalchemy.exc.DBAPIError as e:
            if not isinstance(e, sqlalchemy.exc.IntegrityError) and "already exists" not in str(e):
                raise UsageError(f"cannot open storage {shown}: {_first_line(e)}") from None
            # Several processes created the schema of a new storage at once (workers started
            # together): one won; opening again finds the schema in place.
            time.sleep(0.2 * (attempt + 1))
        except ValueError as e:  # a URL SQLAlchemy cannot parse (a port that is not a number, ...)
            raise UsageError(f"cannot open storage {shown}: not a storage URL ({_first_line(e)}); expected "
                             "sqlite:///PATH or postgresql://USER@HOST[:PORT]/DATABASE") from None
        except Exception as e:  # SQLAlchemy raises many kinds; the user needs one line
            raise UsageError(f"cannot open storage {shown}: {_first_line(e)}") from None
    else:
        raise UsageError(f"cannot open storage {shown}: its schema could not be created")
    if path is not None:
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


def release(storage) -> None:
    """Close pooled connections, so a refusal leaves no SQLite side files (-wal, -shm) behind."""
    engine = engine_of(storage)
    if engine is not None:
        engine.dispose()


def checkpoint(study: optuna.Study) -> None:
    """Fold SQLite's write-ahead log into study.db, so the file alone is the whole study
    (copy it, mail it, open it in optuna-dashboard). No-op for other storages."""
    engine = engine_of(storage_of(study))
    if engine is not None and engine.url.get_backend_name() == "sqlite":
        try:
            with engine.connect() as con:
                con.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlalchemy.exc.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            # A statement a Ctrl-C cut short still holds its table (seen when a second Ctrl-C
            # came during the first one's cleanup). The log stays beside the file, nothing is
            # lost, and the next checkpoint folds it in.


def _half_made(study: optuna.Study) -> bool:
    """Created, but killed before its config landed: no config and no trial yet."""
    return "config" not in study.user_attrs and not study.get_trials(deepcopy=False)


def open_study(storage: RDBStorage, name: str, config: dict | None = None) -> optuna.Study:
    """Load `name`, or create it from `config`. A name that holds another grid is refused.

    Creating a study and writing its config are two writes; a kill between them leaves a
    study with neither config nor trials. Such a study is completed by the next run that
    brings a config, and named as half-made to any command that does not."""
    exists = name in optuna.study.get_all_study_names(storage)
    if not exists and config is None:
        release(storage)
        raise UsageError(f"no study {name!r} in this storage")
    if exists:
        study = optuna.load_study(study_name=name, storage=storage)
        if _half_made(study):
            if config is None:
                release(storage)
                raise UsageError(f"study {name!r} was left half-made by an interrupted start (no config, no "
                                 "trials); rerun the command that created it to finish it")
            exists = False
        else:
            stored = load_config(study)
            if config is not None and stored["fingerprint"] != config["fingerprint"]:
                release(storage)
                raise UsageError(f"study {name!r} already holds a different grid or data "
                                 f"(fingerprint {stored['fingerprint']} vs {config['fingerprint']}); "
                                 "pick another --study-name or --output-dir")
            config = stored
    sampler = FastGridSampler(config["grid"], seed=config["grid_seed"], tag_worker=worker_tag)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, direction="minimize",
                                load_if_exists=True)
    if not exists:
        study.set_metric_names(["val_loss"])
        study.set_user_attr("config", config)
    return study
