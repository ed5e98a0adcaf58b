"""Shared fixtures: one small token cache built once per session from the committed corpus,
and a private PostgreSQL server for the multi-worker tests."""

import glob
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A private worker registry for this test session and every process it starts, set before the
# package is imported: runs elsewhere on the machine must not count as workers of these tests.
os.environ["DROPOUT_DECAY_WORKERS_DIR"] = tempfile.mkdtemp(prefix="dd-workers-")
# One process per run unless a test asks for jobs: auto's choice depends on how fast points run,
# which depends on what else runs on the machine.
os.environ["DROPOUT_DECAY_JOBS"] = "1"

import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from dropout_decay.cli import main as cli
from dropout_decay.data.build import build_cache
from dropout_decay.data.cache import load_cache
from dropout_decay.data.corpus import load_corpus
from dropout_decay.design import Settings, check
from dropout_decay.sweep.provenance import build_config
from dropout_decay.sweep.storage import open_storage, open_study, sqlite_url
from dropout_decay.training.device import select_device

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


# --- helpers shared by the test modules --------------------------------------------------

TRAIN = ["--batch-size", "4", "--seq-len", "32", "--eval-batches", "2", "--eval-every", "15", "--log-every", "10"]


def tiny(cache_dir, out, *extra):
    return ["--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir), "--vocab-size", str(TEST_VOCAB),
            "--models", "1x2x32", "--seeds", "1", "2", "--dropout-rates", "0", "0.1", "0.3", "--steps", "30",
            "--output-dir", str(out), *TRAIN, *extra]


def load(out):
    storage = open_storage(sqlite_url(Path(out)))
    [name] = optuna.study.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def points(study, state=TrialState.COMPLETE):
    return sorted(tuple(sorted(t.params.items())) for t in study.get_trials(states=(state,)))


def read_only(db: Path, *queries: tuple) -> list[list] | None:
    """The rows of each (sql, *args) query on a read-only connection to a live run's storage,
    or None while it has no file or schema yet, or a writer holds it this instant. Polls read
    this way: opening the storage as the package does asks for its write lock (check_writable),
    which slows the run being watched."""
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return [con.execute(sql, args).fetchall() for sql, *args in queries]
        finally:
            con.close()
    except sqlite3.Error:
        return None


def mid_grid(db: Path) -> bool:
    """A COMPLETE trial and a RUNNING one that has registered its worker."""
    rows = read_only(db, ("SELECT state FROM trials",),
                     ("SELECT COUNT(*) FROM trial_user_attributes a JOIN trials t USING (trial_id) "
                      "WHERE a.key = 'worker' AND t.state = 'RUNNING'",))
    if rows is None:
        return False
    states, [(workers,)] = [s for (s,) in rows[0]], rows[1]
    return "COMPLETE" in states and workers > 0


T_975_2DF = 4.302652729749464  # Student's t, 97.5th percentile, 2 degrees of freedom (from a table)
ARMS = ["static:0", "static:0.1", "d"]
# segment -> arm -> val loss of seeds 1, 2, 3
VAL = {0: {"static:0": [5.0, 5.1, 5.2], "static:0.1": [5.3, 5.2, 5.4], "d": [5.2, 5.3, 5.35]},
       1: {"static:0": [4.00, 4.10, 4.20], "static:0.1": [3.90, 4.00, 4.05], "d": [3.80, 3.92, 3.98]}}


def constructed_stream(cache_dir, tmp_path, legacy: bool = False) -> Path:
    """A stream study whose trials carry hand-chosen losses (no training), exported; `legacy`
    stores them as versions before 0.2 did ("stages", each with a "stage" number)."""
    tmp_path.mkdir(exist_ok=True)
    s = check(Settings(stage="stream", models=["winner=1x2x32"], seeds=[1, 2, 3], dropout_rates=[0.0, 0.1],
                       decays=["d:0.2:0.1:cosine"], stream_token_caps=[1000, 2000], device="cpu",
                       cache_dir=str(cache_dir), vocab_size=TEST_VOCAB))
    config = build_config(s, load_cache(cache_dir, TEST_VOCAB), select_device("cpu"), "constructed", None)
    study = open_study(open_storage(sqlite_url(tmp_path)), "constructed", config)
    space = {k: CategoricalDistribution(v) for k, v in config["grid"].items()}
    for seed in (1, 2, 3):
        for arm in ARMS:
            segments = [{"segment": i, "cap": cap, "step": 10 * (i + 1), "dropout_in_force": 0.1, "train_loss": 3.0,
                       "val_loss": VAL[i][arm][seed - 1], "gap": VAL[i][arm][seed - 1] - 3.0}
                      for i, cap in enumerate((1000, 2000))]
            if legacy:
                segments = [{"stage" if k == "segment" else k: v for k, v in seg.items()} for seg in segments]
            study.add_trial(optuna.trial.create_trial(
                params={"model": "winner", "seed": seed, "arm": arm}, distributions=space,
                value=segments[-1]["val_loss"], user_attrs={"stages" if legacy else "segments": segments}))
    assert cli.main(["export", str(tmp_path)]) == 0
    return tmp_path




ROOT = Path(__file__).resolve().parents[1]


def default_ctrl_c() -> None:
    """preexec_fn for children that will get a SIGINT: whatever this shell ignores, they must not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def ctrl_c_given_back():
    """In-process runs shield Ctrl-C while they write; main() must give it back when it returns."""
    before = signal.getsignal(signal.SIGINT)
    yield
    assert signal.getsignal(signal.SIGINT) == before, "SIGINT left ignored: children would inherit it"


@pytest.fixture(autouse=True)
def as_a_fresh_process():
    """Each test starts as a new process would: holding no compiled graphs, so that `--compile
    auto` decides from the test's own grid, not from what earlier tests compiled (torch's own
    cache of graphs stays, so nothing compiles twice)."""
    from dropout_decay.training import compiled

    compiled._HERE = compiled._Process()
    yield


REFERENCE_S = 0.05  # the workload below, measured on an idle 2-core machine of this project's kind
_slowness: list[float] = []


def slowness() -> float:
    """How many times slower than idle this machine runs right now: a fixed small torch workload
    timed against REFERENCE_S (at least 1), measured once a session. No test asserts on wall time;
    waits that must end scale by this, so a loaded machine waits longer instead of failing."""
    if not _slowness:
        import torch

        a = torch.randn(192, 192)
        t0 = time.perf_counter()
        for _ in range(100):
            a = torch.tanh(a @ a) * 0.1
        _slowness.append(max(1.0, (time.perf_counter() - t0) / REFERENCE_S))
    return _slowness[0]


def patience(seconds: float) -> float:
    """A deadline of `seconds` on an idle machine, stretched by how loaded this one is now."""
    return seconds * slowness()


def kill_when(args: list[str], condition, timeout: float = 300) -> int:
    """Start `python -m dropout_decay.study ARGS`, SIGKILL it once `condition()` holds; its pid.
    `timeout` is the idle machine's patience (see `patience`)."""
    proc = subprocess.Popen([sys.executable, "-m", "dropout_decay.study", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + patience(timeout)
        while not condition():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "the run never reached the kill point"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    return proc.pid


# The evidence stream: a real tiny stream with order seeds, fixed-pool twins, matched statics and
# declared claims, trained once a session and read by the design, analysis, report and CLI tests.
CAPS = [3000, 6000, 12000]


def stream_file(tmp_path, cache_dir, claims=True) -> str:
    lines = ['stage = "stream"', 'device = "cpu"', "use_cached_data = true", f'cache_dir = "{cache_dir}"',
             f"vocab_size = {TEST_VOCAB}", 'models = ["winner=1x2x32"]', "seeds = [1, 2]", "order_seeds = [0, 1]",
             "dropout_rates = [0.0, 0.1]", 'decays = ["cos:0.3:0.1:cosine", "early:0.1:0:linear:0.25"]',
             f"stream_token_caps = {CAPS}", "stage_steps = 10", "fixed_pool_controls = true", "matched_statics = true",
             "batch_size = 4", "seq_len = 32", "eval_batches = 2", "eval_every = 5", "log_every = 5"]
    if claims:
        lines += ["[claims]", 'primary = ["cos beats every static at last", "cos helps more as data grows at last", '
                  '"early beats static:0 at 6000", "cos beats every static at trajectory"]']
    path = tmp_path / "evidence.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def evidence_stream(cache_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evidence")
    out = tmp / "run"
    assert cli.main(["run", stream_file(tmp, cache_dir), "--output-dir", str(out)]) == 0
    return out


def metrics(out) -> pd.DataFrame:
    return pd.DataFrame([json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()])


def scipy_pairs(m: pd.DataFrame) -> dict:
    """Per segment and decay: (best static on validation, test-loss diffs per replicate), growing stream."""
    out = {}
    growing = m[~m["arm"].str.endswith("@fixed")]
    for seg, at in growing.groupby("segment"):
        val = at.pivot_table(index=["seed", "order_seed"], columns="arm", values="val_loss")
        test = at.pivot_table(index=["seed", "order_seed"], columns="arm", values="test_loss")
        statics = [a for a in val.columns if a.startswith("static:")]
        best = min(statics, key=lambda a: (val[a].mean(), a))
        out[seg] = (best, statics, test)
    return out
