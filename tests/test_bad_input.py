"""The bad-input matrix: every mistake is one line on stderr naming it, exit 2, no traceback,
and nothing created: no study, no output folder, no cache file."""

import importlib.util
import shutil
from pathlib import Path

import optuna
import pytest

from dropout_decay import study as cli
from dropout_decay.storage import open_storage

from conftest import TEST_VOCAB
from test_study import TRAIN

ROOT = Path(__file__).resolve().parents[1]


def base(c, *grid):
    return ["--device", "cpu", "--use-cached-data", "--cache-dir", c["cache"], "--vocab-size", str(TEST_VOCAB),
            "--models", "1x2x32", "--dropout-rates", "0", "0.1", "0.3", "--steps", "5", *TRAIN, *grid]


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
    "token limits above pool": (lambda c: ["screen", *base(c), "--token-limits", "5000", "999999999", "888888888"],
                                "--token-limits 999,999,999, 888,888,888 exceed the 27,197 training tokens of the cache"),
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
}


@pytest.fixture
def context(cache_dir, corpus_dir, tmp_path, monkeypatch):
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
    storage.engine.dispose()
    return {"cache": str(cache_dir), "new_cache": str(tmp_path / "new-cache"), "nowhere": str(tmp_path / "nowhere"),
            "truncated": str(truncated), "corpus": str(corpus_dir), "empty": str(tmp_path / "empty"),
            "latin1": str(tmp_path / "latin1.txt"), "clash_url": f"sqlite:///{clash}", "tmp": tmp_path}


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))}


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
    assert snapshot(context["tmp"]) == before  # no output folder, cache file or storage file appeared
    assert studies(context["clash_url"]) == ["taken"]  # no study was created either


def test_the_matrix_covers_at_least_20_inputs():
    assert len(CASES) >= 20
