"""A newcomer's first hour (issue 24): the console script, help that lists only what a command
reads, a diverged run named so instead of published, a folder that holds another run left as it
was, and learning curves worth looking at in every shipped config."""

import hashlib
import itertools
import math
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import optuna
import pytest

from dropout_decay.cli import main as cli
from dropout_decay.design.plan import load_workflow
from dropout_decay.design.settings import Settings
from dropout_decay.design.studyfiles import load_study_file, read_toml
from tests.conftest import TEST_VOCAB, TRAIN

ROOT = Path(__file__).resolve().parents[1]


def test_the_console_script_says_its_version_and_runs_the_commands():
    script = Path(sys.executable).with_name("dropout-decay")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    said = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True).stdout
    assert said.strip() == f"dropout-decay {version}"
    usage = subprocess.run([str(script), "screen", "--help"], capture_output=True, text=True, check=True).stdout
    assert usage.startswith("usage: dropout-decay screen")


HELP = {  # command: (flags its help must list, flags it must not: another stage's or not a stage's at all)
    "screen": (["--steps", "--token-limits", "--plateau-delta", "--lr"],
               ["--decays", "--stream-token-caps", "--stage-steps", "--passes", "--lock-from", "--fixed-pool-controls"]),
    "confirm": (["--steps", "--token-limits"], ["--decays", "--stage-steps", "--passes", "--matched-statics"]),
    "probe": (["--passes", "--token-limits", "--plateau-delta"], ["--steps", "--decays", "--stream-token-caps"]),
    "stream": (["--decays", "--stream-token-caps", "--stage-steps", "--fixed-pool-controls", "--lock-from"],
               ["--steps", "--passes", "--token-limits", "--plateau-delta"]),
    "cache": (["--corpus", "--vocab-size", "--splits"], ["--lr", "--steps", "--models", "--device", "--decays"]),
    "workflow": (["--device", "--threads", "--dry-run"], ["--lr", "--steps"]),
}


@pytest.mark.parametrize("command", list(HELP))
def test_each_command_lists_only_the_flags_it_reads(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    listed = set(capsys.readouterr().out.replace("[", " ").replace("]", " ").split())
    present, absent = HELP[command]
    assert set(present) <= listed and not set(absent) & listed


def test_run_help_lists_the_stage_files_and_exits_0(capsys):
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "quickstart" in out and "evidence_smoke" in out and "workflow_smoke" not in out  # a workflow, not a stage file


def tiny_screen(cache_dir, out, *extra):
    return ["screen", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir), "--vocab-size",
            str(TEST_VOCAB), "--models", "1x2x32", "--seeds", "1", "--dropout-rates", "0", "0.1", "0.2",
            "--steps", "30", *TRAIN, "--output-dir", str(out), *extra]


def test_a_run_worse_than_a_uniform_guess_fails_as_diverged_and_publishes_no_optimum(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(tiny_screen(cache_dir, out, "--lr", "5", "--grad-clip", "0")) == 1  # failed points end a run loudly
    err = capsys.readouterr().err
    study = optuna.load_study(study_name=optuna.get_all_study_names(f"sqlite:///{out / 'study.db'}")[0],
                              storage=f"sqlite:///{out / 'study.db'}")
    uniform = f"ln {TEST_VOCAB} = {math.log(TEST_VOCAB):.3f}"  # the oracle: a uniform guess's loss, in nats
    reasons = [t.user_attrs["fail_reason"] for t in study.trials]
    assert len(reasons) == 3 and all(r.startswith("diverged: validation loss") and uniform in r for r in reasons), reasons
    assert all(float(r.split("validation loss ")[1].split()[0]) > math.log(TEST_VOCAB) for r in reasons)
    assert "optimum at p=" not in err and "dropout does not help" not in err
    assert "answer: no point has completed" in err
    assert "failed: 3 point(s), first trial 0" in err and "try a lower --lr; then rerun with --retry-failed" in err
    assert not (out / "model_selection.csv").exists() or "optimum" not in (out / "model_selection.csv").read_text()


def digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_holding_another_grid_is_refused_and_its_files_stay_byte_identical(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    first = tiny_screen(cache_dir, out)
    assert cli.main(first) == 0
    before = digests(out)
    capsys.readouterr()
    assert cli.main(tiny_screen(cache_dir, out, "--lr", "0.002")) == 2  # the learning rate makes it another grid
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds another grid" in err[0] and "new --output-dir" in err[0]
    assert digests(out) == before
    with sqlite3.connect(out / "study.db") as con:
        assert len(con.execute("SELECT study_name FROM studies").fetchall()) == 1
    assert cli.main(first) == 0  # its own command resumes it: nothing left to train
    assert "done: 3/3 complete, 0 failed" in capsys.readouterr().err


def curve_points(s: Settings) -> int:
    """Evaluations on the shortest learning curve of a stage: every eval_every steps and at each end."""
    if s.stage == "stream":
        total = s.stage_steps * len(s.stream_token_caps)
        ends = {s.stage_steps * (i + 1) for i in range(len(s.stream_token_caps))}
    else:
        limit = min(s.token_limits, key=s.steps_for)
        total = s.steps_for(limit)
        ends = set(itertools.accumulate(seg.steps for seg in s.limit_segments(limit)))  # a map: each pass count
    every = set(range(s.train.eval_every, total + 1, s.train.eval_every)) if s.train.eval_every else set()
    return len(every | ends)


# The committed seed_scale_model run was made with this probe interval; changing the file would
# part it from its results.
# The map's curves are its cells (one evaluation per pass count, 4 to 6): evaluating between them
# would cost its committed run time and add nothing a cell uses.
# The decisive stream and its gate evaluate at the end of each of their 4 caps, all their claims
# use: six evaluations between them would have added about 8% to a run of 2 h 18 min, and changing
# the files now would part them from their committed results.
EXCEPT = {("seed_scale_model", "probe"), ("map", "map"), ("decisive_stream", "stream"), ("decisive_gate", "stream")}


def shipped_stages():
    for path in sorted((ROOT / "studies").glob("*.toml")):
        _, data = read_toml(str(path))
        if "workflow" not in data:
            yield path.stem, data["stage"], Settings.from_dict(load_study_file(str(path)), stored=False)
            continue
        wf = load_workflow(str(path))
        screen = wf.settings("screen", {})
        for stage in wf.stages:
            handed = {"models": ["winner=1x2x32"], "dropout_rates": [0.0, 0.1, 0.2],
                      **({"token_limits": screen.token_limits} if stage == "confirm" else {})}
            yield path.stem, stage, screen if stage == "screen" else wf.settings(stage, handed)


@pytest.mark.parametrize("name, stage, settings", list(shipped_stages()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_shipped_learning_curve_has_at_least_10_points(name, stage, settings):
    if (name, stage) in EXCEPT:
        pytest.skip("committed with fewer; see EXCEPT")
    if settings.token_limits is None and stage != "stream":
        pytest.skip("its limit is the whole cache, known only with the data")
    assert curve_points(settings) >= 10


def test_the_time_estimate_prices_steps_with_dropout_on_apart_from_plain_steps_and_evaluations():
    """Worked by hand: 2 caps of 10 steps, an 'early' decay linear from 0.1 to 0 by a quarter of
    the run: progress i/19 reaches 0.25 after step i = 4, so 5 of its 20 steps drop; static 0
    drops none, static 0.2 all 20. Evaluations (one per cap, none between: eval_every 0) are
    forward passes without dropout, each batch at its own timed cost: 2 per point x 3 sets x 4 batches."""
    from dropout_decay.sweep.estimate import StepCost, grid_seconds
    from dropout_decay.training.trainer import TrainConfig
    s = Settings(stage="stream", models=["1x2x32"], seeds=[1, 2], dropout_rates=[0.0, 0.2],
                 decays=["early:0.1:0:linear:0.25"], stream_token_caps=[1000, 2000], stage_steps=10,
                 train=TrainConfig(eval_every=0, eval_batches=4))
    plain, dropping, evaluation = 1.0, 3.0, 0.5
    steps = (20 * plain) + (20 * dropping) + (5 * dropping + 15 * plain)
    evals = 3 * 2 * 3 * 4 * evaluation
    assert grid_seconds(s, {"1x2x32": StepCost(plain, dropping, evaluation)}) == pytest.approx(2 * (steps + evals))
