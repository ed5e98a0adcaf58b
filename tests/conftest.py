"""Shared fixtures: one small token cache built once per session from the committed corpus,
and a private PostgreSQL server for the multi-worker tests."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from dropout_decay.build import build_cache
from dropout_decay.corpus import load_corpus

FIXTURE_CORPUS = Path(__file__).parent / "fixtures" / "corpus"
TEST_VOCAB = 512


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    return FIXTURE_CORPUS


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cache")
    build_cache(d, TEST_VOCAB, load_corpus(str(FIXTURE_CORPUS)))
    return d


def _pg_bin(name: str) -> str | None:
    """On PATH, or where Debian keeps it (newest version first)."""
    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A private PostgreSQL cluster on loopback in a temp folder, torn down after the session.
    As root, the server runs as the `postgres` user (it refuses root). Absent binaries skip the
    tests, unless scripts/test.sh found them (DROPOUT_DECAY_REQUIRE_POSTGRES=1): then any
    failure to start is a test failure."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("DROPOUT_DECAY_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL binaries were found by scripts/test.sh but not here")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl); scripts/test.sh installs them on Debian")
    root = Path(tempfile.mkdtemp(prefix="dd-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=200"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server, request):
    """A fresh database per test."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name}")
        con.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"
