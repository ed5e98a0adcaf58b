"""The bad-input matrix: every mistake is one line on stderr naming it, exit 2, no traceback,
and nothing created or changed: no study, no output folder, no cache file, no storage touched."""

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from dropout_decay.cli import main as cli
from dropout_decay.sweep.storage import open_storage
from tests.conftest import TEST_VOCAB, TRAIN, load, patience

ROOT = Path(__file__).resolve().parents[1]


def base(c, *grid):
    return ["--device", "cpu", "--use-cached-data", "--cache-dir", c["cache"], "--vocab-size", str(TEST_VOCAB),
            "--models", "1x2x32", "--dropout-rates", "0", "0.1", "0.3", *TRAIN, *grid]


def fresh(c, *corpus):
    """Build a new cache from a corpus: nothing may be written when the corpus is bad."""
    return ["--device", "cpu", "--cache-dir", c["new_cache"], "--vocab-size", str(TEST_VOCAB), "--models", "1x2x32",
            "--dropout-rates", "0", "0.1", "0.3", "--steps", "5", *TRAIN, *corpus]


CASES = {
    "model spec garbage": (lambda c: ["screen", *base(c), "--models", "banana"], "bad model spec 'banana'"),
    "model width vs heads": (lambda c: ["screen", *base(c), "--models", "2x3x64"], "not divisible by 3 heads"),
    "model odd head dim": (lambda c: ["screen", *base(c), "--models", "2x2x18"], "must be even for rotary"),
    "decay spec shape": (lambda c: ["stream", *base(c), "--models", "winner=1x2x32", "--decays", "d:0.3:0.1:wiggle"],
                         "unknown shape 'wiggle'"),
    "decay spec fields": (lambda c: ["stream", *base(c), "--models", "winner=1x2x32", "--decays", "d:0.3"],
                          "expected NAME:START:END:SHAPE"),
    "dropout 1": (lambda c: ["screen", *base(c), "--dropout-rates", "0", "0.5", "1.0"], "1.0 is outside [0, 1)"),
    "dropout negative": (lambda c: ["screen", *base(c), "--dropout-rates", "-0.1", "0", "0.5"], "outside [0, 1)"),
    "negative steps": (lambda c: ["screen", *base(c), "--steps", "-5"], "--steps must be positive, got -5"),
    "zero learning rate": (lambda c: ["screen", *base(c), "--lr", "0"], "--lr must be positive"),
    "unknown mask form": (lambda c: ["screen", *base(c), "--dropout-masks", "3"], "--dropout-masks must be one of 1, 2, got 3"),
    "token limits above pool": (lambda c: ["screen", *base(c), "--token-limits", "5000", "999999999", "888888888"],
                                "--token-limits 999,999,999, 888,888,888 exceed the 24,700 training tokens of the cache"),
    "stream caps decreasing": (lambda c: ["stream", *base(c), "--models", "winner=1x2x32",
                                          "--stream-token-caps", "4000", "2000"], "must increase strictly"),
    "missing cache": (lambda c: ["screen", *base(c), "--cache-dir", c["nowhere"]], "no token cache for vocab 512"),
    "foreign cache vocab": (lambda c: ["screen", *base(c), "--vocab-size", "1024"], "no token cache for vocab 1024"),
    "truncated cache": (lambda c: ["screen", *base(c), "--cache-dir", c["truncated"]], "truncated"),
    "vocab beyond uint16": (lambda c: ["cache", "--cache-dir", c["new_cache"], "--vocab-size", "70000",
                                       "--corpus", c["corpus"]], "--vocab-size must lie in 258..65536"),
    "empty corpus": (lambda c: ["screen", *fresh(c, "--corpus", c["empty"])], "holds no text"),
    "missing corpus": (lambda c: ["screen", *fresh(c, "--corpus", c["nowhere"])], "does not exist"),
    "glob matching nothing": (lambda c: ["screen", *fresh(c, "--corpus-glob", c["nowhere"] + "/*.txt")],
                              "matches no file"),
    "non-UTF-8 file": (lambda c: ["screen", *fresh(c, "--corpus", c["latin1"])], "is not UTF-8 text"),
    "cached data plus corpus": (lambda c: ["screen", *base(c), "--corpus", c["corpus"]], "cannot be combined"),
    "unknown command": (lambda c: ["frobnicate"], "unknown command 'frobnicate'"),
    "unknown flag": (lambda c: ["screen", *base(c), "--stepz", "5"], "unrecognized arguments: --stepz"),
    "non-numeric flag": (lambda c: ["screen", *base(c), "--steps", "many"], "invalid int value: 'many'"),
    "unknown mode": (lambda c: ["@run_experiments", "--mode", "sweep_everything", *base(c)],
                     "invalid choice: 'sweep_everything'"),
    "confirm with 2 seeds": (lambda c: ["confirm", *base(c), "--seeds", "1", "2"], "confirm needs exactly 3 seeds, got 2"),
    "duplicate seeds": (lambda c: ["screen", *base(c), "--seeds", "1", "1"], "--seeds must be distinct"),
    "stream without a lock": (lambda c: ["stream", *base(c)], "stream needs a locked model"),
    "lock from a non-run": (lambda c: ["stream", *base(c), "--lock-from", c["nowhere"]], "no readable model_selection.json"),
    "mps unavailable": (lambda c: ["screen", *base(c), "--device", "mps"], "MPS"),  # not built with it, or unavailable
    "unknown device": (lambda c: ["screen", *base(c), "--device", "tpu"], "unknown device 'tpu'"),
    "unreachable storage": (lambda c: ["screen", *base(c), "--storage", "postgresql://nobody@127.0.0.1:1/none"],
                            "cannot open storage postgresql://nobody@127.0.0.1:1/none"),
    "storage scheme": (lambda c: ["screen", *base(c), "--storage", "mongodb://127.0.0.1/x"], "cannot open storage"),
    "storage password stays secret": (lambda c: ["screen", *base(c), "--storage", "postgresql://me:s3cret@127.0.0.1:1/x"],
                                      "cannot open storage postgresql://me:***@127.0.0.1:1/x"),
    "study name clash": (lambda c: ["screen", *base(c), "--storage", c["clash_url"], "--study-name", "taken"],
                         "study 'taken' already holds a different grid"),
    "worker on a missing study": (lambda c: ["worker", "--storage", c["clash_url"], "--study", "absent"],
                                  "no study 'absent' in this storage"),
    "worker on a missing file": (lambda c: ["worker", "--storage", f"sqlite:///{c['nowhere']}/x.db", "--study", "x"],
                                 "no storage file at"),
    "status of a non-run": (lambda c: ["status", c["nowhere"]], "holds no study.db"),
    "unknown study file": (lambda c: ["run", "nonexistent"], "no study file 'nonexistent'"),
    # storage files that are not storages: refused read-only, nothing written into them
    "status of an empty study.db": (lambda c: ["status", c["empty_run"]], "is empty, not a study storage"),
    "export of an empty study.db": (lambda c: ["export", c["empty_run"]], "is empty, not a study storage"),
    "dashboard on an empty study.db": (lambda c: ["dashboard", c["empty_run"], "--port", "0"], "is empty"),
    "dashboard on a text file": (lambda c: ["dashboard", c["text_run"], "--port", "0"], "is not a SQLite file"),
    "status of a SQLite file without studies": (lambda c: ["status", c["bare_run"]], "holds no Optuna studies"),
    "status of a half-made study": (lambda c: ["status", "--storage", c["half_url"], "--study", "half"],
                                    "was left half-made by an interrupted start"),
    # ports
    "dashboard port too large": (lambda c: ["dashboard", c["run"], "--port", "99999"], "--port 99999 is outside 1..65535"),
    "dashboard port negative": (lambda c: ["dashboard", c["run"], "--port", "-1"], "--port -1 is outside 1..65535"),
    "dashboard port busy": (lambda c: ["dashboard", c["run"], "--port", str(c["busy_port"])],
                            "Address already in use; pick another --port"),
    # data
    "unknown document order": (lambda c: ["screen", *base(c), "--document-order", "random"],
                               "argument --document-order: invalid choice: 'random'"),
    "cache of another layout": (lambda c: ["screen", *base(c), "--document-order", "as-is"],
                                "holds documents shuffled with seed 0, not in source order"),
    "cache of another order seed": (lambda c: ["screen", *base(c), "--order-seed", "7"],
                                    "not shuffled with seed 7"),
    "jsonl row without the text field": (lambda c: ["screen", *fresh(c, "--corpus", c["jsonl"])],
                                         "line 2 has no string field 'text'"),
    "jsonl with another text field": (lambda c: ["screen", *fresh(c, "--corpus", c["jsonl"], "--text-field", "body")],
                                      "line 1 has no string field 'body'"),
    "unsupported corpus file": (lambda c: ["screen", *fresh(c, "--corpus", c["csv"])], "unsupported file type"),
    # probe and calibrated decays
    "probe without passes": (lambda c: ["probe", *base(c), "--token-limits", "1000", "2000", "4000"],
                             "probe needs --passes"),
    "probe with two caps": (lambda c: ["probe", *base(c), "--passes", "2", "--token-limits", "1000", "2000"],
                            "probe needs at least 3 increasing --token-limits"),
    "calibrated decay without its probe": (lambda c: ["stream", *base(c), "--models", "winner=1x2x32", "--decays",
                                                      f"cal:calibrated:{c['nowhere']}/probe.json"],
                                           "cannot read probe results"),
    "calibrated decay on a probe without a law": (lambda c: ["stream", *base(c), "--models", "winner=1x2x32", "--decays",
                                                             f"cal:calibrated:{c['lawless']}"],
                                                  "has no law to follow (no cap has an interior optimum"),
    # run flags and files
    "zero threads": (lambda c: ["screen", *base(c), "--threads", "0"], "--threads must be 1..1024, got 0"),
    "zero heartbeat": (lambda c: ["screen", *base(c), "--heartbeat", "0"], "--heartbeat must be 1..86,400 seconds, got 0"),
    "threads beyond any CPU": (lambda c: ["screen", *base(c), "--threads", "5000"], "--threads must be 1..1024, got 5,000"),
    "heartbeat of days": (lambda c: ["worker", "--storage", c["clash_url"], "--study", "taken", "--heartbeat", "999999"],
                          "--heartbeat must be 1..86,400 seconds"),
    # what cannot fit in memory is refused from its shapes, before anything is built (issue 32)
    "model too large, dry run": (lambda c: ["screen", *base(c), "--models", "64x32x6144", "--dry-run"],
                                 "64x32x6144 needs about"),
    "model too large": (lambda c: ["screen", *base(c), "--models", "64x32x6144"], "choose a smaller model"),
    "model too large in a workflow dry run": (lambda c: ["workflow", c["huge_model_file"], "--dry-run"], "choose a smaller model"),
    "batch too large": (lambda c: ["screen", *base(c), "--batch-size", "60000"], "use a smaller --batch-size"),
    # numbers outside what they feed (issue 32)
    "negative seed": (lambda c: ["screen", *base(c), "--seeds", "-3", "1"], "--seeds must lie in 0..9,223,372,036,854,775,807"),
    "seed beyond 64 bits": (lambda c: ["screen", *base(c), "--seeds", str(2**65)], "--seeds takes integers of at most 64 bits"),
    "negative order seeds": (lambda c: ["screen", *base(c), "--order-seeds", "0", "-1"], "--order-seeds must lie in 0.."),
    "grid seed beyond 32 bits": (lambda c: ["screen", *base(c), "--grid-seed", str(2**40)], "--grid-seed must lie in 0..4,294,967,295"),
    "steps beyond 64 bits": (lambda c: ["screen", *base(c), "--steps", str(2**64)], "--steps must be a finite 64-bit integer"),
    "a point that would not end": (lambda c: ["probe", *base(c), "--token-limits", "1000", "2000", "4000", "--passes", "1e12"],
                                   "steps would not end"),
    "vocab below the bytes": (lambda c: ["screen", *base(c), "--vocab-size", "200"], "--vocab-size must lie in 258..65536"),
    "sequence of one token": (lambda c: ["screen", *base(c), "--seq-len", "1"], "--seq-len must be at least 2"),
    "sequence of no token": (lambda c: ["screen", *base(c), "--seq-len", "0"], "--seq-len must be positive"),
    "warm-up as long as the run": (lambda c: ["screen", *base(c), "--steps", "20", "--warmup-steps", "20"],
                                   "--warmup-steps 20 must be shorter than the 20 steps it warms (--steps)"),
    "warm-up beyond the first segment": (lambda c: ["stream", *base(c), "--models", "winner=1x2x32", "--stage-steps", "10",
                                                    "--warmup-steps", "25", "--stream-token-caps", "2000", "4000"],
                                         "shorter than the 10 steps it warms (--stage-steps of the first segment)"),
    "warm-up beyond a probe's shortest point": (lambda c: ["probe", *base(c), "--token-limits", "1000", "2000", "4000",
                                                          "--passes", "2", "--warmup-steps", "500"], "(--passes over the smallest"),
    "warm-up in a workflow file": (lambda c: ["workflow", c["long_warmup_file"]], "--warmup-steps 900 must be shorter than"),
    "stream with one cap": (lambda c: ["stream", *base(c), "--models", "winner=1x2x32", "--stream-token-caps", "3000"],
                            "a stream needs at least 2 --stream-token-caps"),
    "negative seed in a stage file": (lambda c: ["run", c["negative_seed_file"]], "--seeds must lie in 0.."),
    # storages that cannot be written: one line naming the file and why, the file unchanged (issue 32)
    "storage is a folder": (lambda c: ["screen", *base(c), "--storage", f"sqlite:///{c['tmp']}/empty"],
                            "is a folder, not a database file"),
    "storage inside a file": (lambda c: ["screen", *base(c), "--storage", f"sqlite:///{c['csv']}/x.db"], "which is a file"),
    "storage locked by another program": (lambda c: ["screen", *base(c), "--storage", c["locked_url"]],
                                          "is locked by another program"),
    "worker on a locked storage": (lambda c: ["worker", "--storage", c["locked_url"], "--study", "taken"],
                                   "is locked by another program"),
    "workflow file as a stage file": (lambda c: ["run", "workflow_smoke"], "is a workflow; run it with `workflow"),
    "stage file as a workflow": (lambda c: ["workflow", "quickstart"], "is not a workflow file"),
    "missing workflow file": (lambda c: ["workflow", "nonexistent"], "no study file 'nonexistent'"),
    # a flag or key that the command would ignore
    "stream flag on a screen": (lambda c: ["screen", *base(c), "--decays", "d:0.3:0.1:cosine"],
                                "--decays does not apply to a screen (it is a flag of stream)"),
    "stream caps on a screen": (lambda c: ["screen", *base(c), "--stream-token-caps", "1000", "2000"],
                                "--stream-token-caps does not apply to a screen"),
    "steps on a stream": (lambda c: ["stream", *base(c), "--models", "winner=1x2x32", "--steps", "5"],
                          "--steps does not apply to a stream (it is a flag of screen and confirm)"),
    "steps on a probe via run_experiments": (lambda c: ["@run_experiments", "--mode", "locked_stream", *base(c),
                                                        "--models", "winner=1x2x32", "--steps", "5"],
                                             "--steps does not apply to a stream"),
    "training flag on cache": (lambda c: ["cache", "--cache-dir", c["new_cache"], "--lr", "0.1"],
                               "unrecognized arguments: --lr"),
    "stage file key of another stage": (lambda c: ["run", c["foreign_key_file"]], "`decays` does not apply to a screen"),
    "workflow table key of another stage": (lambda c: ["workflow", c["foreign_table_file"]],
                                            "[stream]: `steps` does not apply to a stream"),
    "TOML string for a list": (lambda c: ["run", c["string_models_file"]], "--models takes a list (in a TOML file"),
    # numbers that are not numbers
    "NaN gradient clip": (lambda c: ["screen", *base(c), "--grad-clip", "nan"], "--grad-clip must be a finite number, got nan"),
    "infinite learning rate": (lambda c: ["screen", *base(c), "--lr", "inf"], "--lr must be a finite number, got inf"),
    "NaN dropout rate": (lambda c: ["screen", *base(c), "--dropout-rates", "0", "nan", "0.3"],
                         "--dropout-rates takes finite numbers; got nan"),
    "NaN probe passes": (lambda c: ["probe", *base(c), "--token-limits", "1000", "2000", "4000", "--passes", "nan"],
                         "--passes takes finite numbers; got nan"),
    "NaN plateau delta": (lambda c: ["screen", *base(c), "--plateau-delta", "nan"], "--plateau-delta must be a finite number"),
    "NaN min lr ratio": (lambda c: ["screen", *base(c), "--min-lr-ratio", "nan"], "--min-lr-ratio must be a finite number"),
    "infinite weight decay": (lambda c: ["screen", *base(c), "--weight-decay", "inf"], "--weight-decay must be a finite number"),
    "garbage storage URL": (lambda c: ["screen", *base(c), "--storage", "postgresql://a:b@host:port/x"],
                            "not a storage URL"),
    # output folders
    "output folder is a file": (lambda c: ["screen", *base(c), "--output-dir", c["csv"]], "is a file, not a folder"),
    "output folder inside a file": (lambda c: ["screen", *base(c), "--output-dir", c["csv"] + "/run"],
                                    "which is a file; name a folder elsewhere"),
    "workflow folder is a file": (lambda c: ["workflow", "workflow_smoke", "--output-dir", c["csv"]], "is a file, not a folder"),
    "output folder not writable": (lambda c: ["screen", *base(c), "--output-dir", "/sys/dropout-decay-run"],
                                   "cannot write in /sys"),
    "run folder of another grid": (lambda c: ["screen", *base(c), "--output-dir", c["run"]],
                                   "already holds another grid (study taken)"),
}


@pytest.fixture
def context(cache_dir, corpus_dir, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)  # the default runs/ folder would land here
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("   \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    truncated = tmp_path / "truncated"
    shutil.copytree(cache_dir, truncated)
    tokens = next(truncated.glob("tokens-*.npy"))
    tokens.write_bytes(tokens.read_bytes()[:-100])
    clash = tmp_path / "clash.db"
    storage = open_storage(f"sqlite:///{clash}")
    study = optuna.create_study(study_name="taken", storage=storage)
    study.set_user_attr("config", {"fingerprint": "another grid", "grid": {"x": [1]}, "grid_seed": 0})
    optuna.create_study(study_name="half", storage=storage)  # killed before its config landed
    storage.engine.dispose()
    for name, content in (("empty_run", b""), ("text_run", b"not a database\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "study.db").write_bytes(content)
    (tmp_path / "bare_run").mkdir()
    sqlite3.connect(tmp_path / "bare_run" / "study.db").execute("CREATE TABLE t (x)").connection.close()
    (tmp_path / "run").mkdir()
    shutil.copy(clash, tmp_path / "run" / "study.db")
    (tmp_path / "rows.jsonl").write_text('{"text": "one"}\n{"body": "two"}\n')
    (tmp_path / "data.csv").write_text("a,b\n")
    (tmp_path / "foreign.toml").write_text('stage = "screen"\ndecays = ["d:0.3:0.1:cosine"]\n')
    (tmp_path / "strings.toml").write_text('stage = "screen"\nmodels = "1x2x32"\n')
    (tmp_path / "tables.toml").write_text(
        (ROOT / "studies" / "workflow_smoke.toml").read_text().replace("stage_steps = 120", "stage_steps = 120\nsteps = 5"))
    (tmp_path / "lawless.json").write_text(json.dumps({"law": {"form": None, "reason": "no cap has an interior optimum"}}))
    (tmp_path / "huge.toml").write_text((ROOT / "studies" / "workflow_smoke.toml").read_text().replace(
        'models = ["1x2x32", "1x4x64"]', 'models = ["1x2x32", "64x32x6144"]'))
    (tmp_path / "warmup.toml").write_text((ROOT / "studies" / "workflow_smoke.toml").read_text().replace(
        "warmup_steps = 10", "warmup_steps = 900"))
    (tmp_path / "seeds.toml").write_text('stage = "screen"\nseeds = [-1, 2]\n')
    locked = tmp_path / "locked.db"
    shutil.copy(clash, locked)
    monkeypatch.setenv("DROPOUT_DECAY_LOCK_WAIT_S", "0.5")
    holder = sqlite3.connect(locked, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # another program's lock, held for the whole test
    request.addfinalizer(holder.close)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    request.addfinalizer(busy.close)
    return {"cache": str(cache_dir), "new_cache": str(tmp_path / "new-cache"), "nowhere": str(tmp_path / "nowhere"),
            "truncated": str(truncated), "corpus": str(corpus_dir), "empty": str(tmp_path / "empty"),
            "latin1": str(tmp_path / "latin1.txt"), "clash_url": f"sqlite:///{clash}", "tmp": tmp_path,
            "empty_run": str(tmp_path / "empty_run"), "text_run": str(tmp_path / "text_run"),
            "bare_run": str(tmp_path / "bare_run"), "half_url": f"sqlite:///{clash}", "run": str(tmp_path / "run"),
            "jsonl": str(tmp_path / "rows.jsonl"), "csv": str(tmp_path / "data.csv"),
            "lawless": str(tmp_path / "lawless.json"), "busy_port": busy.getsockname()[1],
            "foreign_key_file": str(tmp_path / "foreign.toml"), "string_models_file": str(tmp_path / "strings.toml"),
            "foreign_table_file": str(tmp_path / "tables.toml"), "huge_model_file": str(tmp_path / "huge.toml"),
            "long_warmup_file": str(tmp_path / "warmup.toml"), "negative_seed_file": str(tmp_path / "seeds.toml"),
            "locked_url": f"sqlite:///{locked}"}


def snapshot(root: Path) -> dict:
    """Every path under root with its size and modification time: a new or touched file shows."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def studies(url: str) -> list[str]:
    storage = open_storage(url)
    names = optuna.study.get_all_study_names(storage)
    storage.engine.dispose()
    return names


def run_experiments(argv):
    spec = importlib.util.spec_from_file_location("run_experiments", ROOT / "scripts" / "run_experiments.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(argv)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_creates_nothing(case, context, capsys):
    make_argv, message = CASES[case]
    argv = make_argv(context)
    before = snapshot(context["tmp"])
    capsys.readouterr()
    code = run_experiments(argv[1:]) if argv[0] == "@run_experiments" else cli.main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in err + out
    assert snapshot(context["tmp"]) == before  # no output folder, cache file or storage file appeared or changed
    assert sorted(studies(context["clash_url"])) == ["half", "taken"]  # no study was created either


def cli_process(args: list[str], env: dict | None = None, prefix: tuple = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "dropout_decay.study", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=patience(120))


def digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


WITHOUT_ROOTS_OVERRIDE = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")  # root obeys permission bits


def unwritable(kind: str, folder: Path) -> Path:
    """A SQLite storage that cannot be written, three ways; returns its path."""
    db = folder / "study.db"
    sqlite3.connect(db).execute("CREATE TABLE studies (x)").connection.close()
    if kind == "read-only file":
        db.chmod(0o444)
    elif kind == "folder without write permission":
        folder.chmod(0o555)
    elif subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode:
        pytest.skip("this file system cannot make a file immutable")
    return db


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to drop its override")
@pytest.mark.parametrize("kind, says", [("read-only file", "cannot be written (Permission denied"),
                                        ("folder without write permission", "cannot write in its folder"),
                                        ("immutable file", "cannot be written (Operation not permitted")])
def test_a_storage_that_cannot_be_written_is_one_line_exit_2_and_left_unchanged(kind, says, cache_dir, tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    db = unwritable(kind, folder)
    before = digest(folder)
    args = ["screen", *base({"cache": str(cache_dir)}), "--storage", f"sqlite:///{db}", "--output-dir", str(tmp_path / "run")]
    try:
        done = cli_process(args, prefix=WITHOUT_ROOTS_OVERRIDE)
        after = digest(folder)
    finally:
        folder.chmod(0o755)
        subprocess.run(["chattr", "-i", str(db)], capture_output=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and says in lines[0] and str(db) in lines[0], done.stderr
    assert "Traceback" not in done.stderr and after == before and not (tmp_path / "run").exists()


def test_under_a_memory_limit_runs_and_workers_refuse_before_training_naming_the_flag(cache_dir, tmp_path):
    out = tmp_path / "run"
    args = ["screen", *base({"cache": str(cache_dir)}), "--batch-size", "256", "--seq-len", "64", "--eval-batches", "1"]
    limited = {"DROPOUT_DECAY_MEMORY_GIB": "0.3"}
    refused = cli_process([*args, "--output-dir", str(out)], limited)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "and 0.30 GiB is available on cpu" in lines[0], refused.stderr
    assert "train it in parts with --micro-batch" in lines[0] and not out.exists()
    # a study made where memory sufficed: a worker on a smaller machine refuses before its first point
    made = cli_process([*args, "--output-dir", str(out), "--steps", "2", "--micro-batch", "64", "--dropout-rates", "0", "0.1",
                        "0.2", "--warmup-steps", "1"])
    assert made.returncode == 0, made.stderr
    trials = len(load(out).trials)
    name = load(out).study_name
    worker = cli_process(["worker", "--storage", f"sqlite:///{out / 'study.db'}", "--study", name],
                         {"DROPOUT_DECAY_MEMORY_GIB": "0.15"})
    assert worker.returncode == 2 and "needs about" in worker.stderr and "Traceback" not in worker.stderr
    assert len(load(out).trials) == trials
