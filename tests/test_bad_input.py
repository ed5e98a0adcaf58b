"""The bad-input matrix: every mistake is one line on stderr naming it, exit 2, no traceback,
and nothing created or changed: no study, no output folder, no cache file, no storage touched."""

import importlib.util
import json
import shutil
import socket
import sqlite3
from pathlib import Path

import optuna
import pytest

from dropout_decay.cli import main as cli
from dropout_decay.sweep.storage import open_storage
from tests.conftest import TEST_VOCAB, TRAIN

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
                                       "--corpus", c["corpus"]], "so ids fit uint16"),
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
    "zero threads": (lambda c: ["screen", *base(c), "--threads", "0"], "--threads must be positive, got 0"),
    "zero heartbeat": (lambda c: ["screen", *base(c), "--heartbeat", "0"], "--heartbeat must be positive, got 0"),
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
                         "--passes must be a finite number, got nan"),
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
            "foreign_table_file": str(tmp_path / "tables.toml")}


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
