"""The workflow (cli/workflow.py) end to end on studies/workflow_smoke.toml: kills mid-stage,
resume, the stop rule."""

import json
import math
import re
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dropout_decay.cli import main as cli
from dropout_decay.sweep.storage import open_storage, sqlite_url
from tests.conftest import TEST_VOCAB, kill_when, read_only

ROOT = Path(__file__).resolve().parents[2]


SMOKE = ROOT / "studies" / "workflow_smoke.toml"


def smoke_file(tmp_path: Path, cache_dir: Path, edit=lambda text: text) -> Path:
    """The smoke workflow on the test cache (same vocabulary), optionally edited. The test corpus
    overfits sooner than the default corpus the file is tuned for, so its probe makes 15 passes
    and its evaluations 2 batches here, in half the time (scripts/check_shipped.py runs it as shipped)."""
    text = SMOKE.read_text().replace("[workflow]\n", f'[workflow]\nuse_cached_data = true\ncache_dir = "{cache_dir}"\n', 1)
    text = text.replace("eval_batches = 8\n", "eval_batches = 2\n").replace("passes = 30\neval_every = 16",
                                                                         "passes = 15\neval_every = 8")
    assert f"vocab_size = {TEST_VOCAB}" in text
    path = tmp_path / "smoke.toml"
    path.write_text(edit(text))
    return path


def stage_state(db: Path, study: str) -> Counter:
    """Trial states of one study, read with plain read-only SQL; a RUNNING trial counts as
    RUNNING once its worker has tagged it (a kill before that is test_workers' business)."""
    [rows] = read_only(db, ("SELECT t.state, EXISTS (SELECT 1 FROM trial_user_attributes a WHERE "
                            "a.trial_id = t.trial_id AND a.key = 'worker') FROM trials t JOIN studies s "
                            "USING (study_id) WHERE s.study_name = ?", study)) or [[]]
    return Counter(state if state != "RUNNING" or tagged else "UNTAGGED" for state, tagged in rows)


def studies_of(out: Path) -> dict[str, optuna.Study]:
    storage = open_storage(sqlite_url(out))
    return {name: optuna.load_study(study_name=name, storage=storage) for name in optuna.get_all_study_names(storage)}


# Half of every stage: the same passes over half the screen's tokens, half the probe's passes, half
# the stream's steps, each with its evaluations twice as often so every curve keeps 10+ points.
HALF_SCREEN = {"token_limits = [3000]\nsteps = 500": "token_limits = [1500]\nsteps = 250\neval_every = 20",
               "[confirm]\nsteps = 500": "[confirm]\nsteps = 250\neval_every = 20",
               "passes = 15\neval_every = 8": "passes = 8\neval_every = 4",
               "stage_steps = 120\neval_every = 30": "stage_steps = 60\neval_every = 15"}


def halved(text: str) -> str:
    for old, new in HALF_SCREEN.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_killed_mid_confirm_and_mid_stream_the_workflow_resumes_every_point_once(cache_dir, tmp_path):
    config, out = smoke_file(tmp_path, cache_dir, halved), tmp_path / "run"
    args = ["workflow", str(config), "--output-dir", str(out)]
    db = out / "study.db"

    def mid(stage):
        def condition():
            states = stage_state(db, f"smoke-{stage}")
            return states["COMPLETE"] >= 2 and states["RUNNING"] >= 1
        return condition

    kill_when(args, mid("confirm"))
    before = json.loads((out / "workflow.json").read_text())
    assert before["status"] == "running" and [d["step"] for d in before["decisions"]] == ["select after screen"]
    kill_when(args, mid("stream"))
    middle = json.loads((out / "workflow.json").read_text())
    assert middle["decisions"][0] == before["decisions"][0]
    assert cli.main(args) == 0
    after = json.loads((out / "workflow.json").read_text())
    assert after["status"] == "done" and after["decisions"][: len(middle["decisions"])] == middle["decisions"]
    assert [d["step"] for d in after["decisions"]] == [
        "select after screen", "select after confirm", "lock", "probe law", "stream arms"]
    studies = studies_of(out)
    assert sorted(studies) == ["smoke-confirm", "smoke-probe", "smoke-screen", "smoke-stream"]
    for name, study in studies.items():
        done = [tuple(sorted(t.params.items())) for t in study.get_trials(states=(TrialState.COMPLETE,))]
        grid = study.user_attrs["config"]["grid"]
        assert len(done) == len(set(done)) == math.prod(map(len, grid.values())), name  # every point exactly once
        lost = {t.number for t in study.trials if t.state == TrialState.FAIL}
        retried = {t.user_attrs["retry_of"]: t.user_attrs["retry_reason"] for t in study.trials if "retry_of" in t.user_attrs}
        assert lost <= set(retried) and all(retried[n].startswith(("worker lost", "resume after: worker lost")) for n in lost), name
        assert all(len(t.intermediate_values) >= 10 for t in study.get_trials(states=(TrialState.COMPLETE,))), name
        assert study.metric_names == ["val_loss"], name  # the dashboard names the objective
    assert len(studies["smoke-confirm"].get_trials(states=(TrialState.FAIL,))) == 1
    assert len(studies["smoke-stream"].get_trials(states=(TrialState.FAIL,))) == 1
    # the handoffs: the stream runs the locked model with the derived arms, recorded in its config
    stream = studies["smoke-stream"].user_attrs["config"]
    lock = after["decisions"][2]["chosen"]
    assert stream["lock"]["model"] == lock == stream["settings"]["models"][0]
    p_star = stream["lock"]["confirm_best_p"]
    assert 0 < p_star and p_star in stream["settings"]["dropout_rates"] and 0.0 in stream["settings"]["dropout_rates"]
    arms = stream["grid"]["arm"]
    assert len([a for a in arms if a.startswith("static")]) >= 3 and len([a for a in arms if not a.startswith("static")]) >= 2
    # every stage's artefacts, one index, one copy of plotly.js
    for stage in ("screen", "confirm", "probe", "stream"):
        assert json.loads((out / stage / "export.json").read_text())["files"]
        assert '<script src="../plotly.min.js">' in (out / stage / "report.html").read_text()
    index = (out / "index.html").read_text()
    assert "Decisions" in index and "Does a decay beat every static rate?" in index and lock in index
    assert not list(out.glob("*/plotly.min.js")) and (out / "plotly.min.js").is_file()
    metrics = [json.loads(line) for line in (out / "stream" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == math.prod(map(len, stream["grid"].values())) * 3  # every point once, three segments each


def test_a_screen_without_an_interior_optimum_stops_the_workflow_with_advice(cache_dir, tmp_path, capsys):
    config = smoke_file(tmp_path, cache_dir, lambda t: t.replace(
        "steps = 500\n\n[confirm]", "steps = 12\n\n[confirm]"))
    out = tmp_path / "run"
    assert cli.main(["workflow", str(config), "--output-dir", str(out)]) == 0
    err = capsys.readouterr().err
    assert "stopped after screen: no screened model has an interior, nonzero optimum" in err and "Try:" in err
    record = json.loads((out / "workflow.json").read_text())
    assert record["status"] == "stopped" and record["stopped"]["after"] == "screen" and record["stopped"]["advice"]
    assert [s["candidate"] for s in record["stages"]["screen"]["selection"]] == [False, False]
    assert sorted(studies_of(out)) == ["smoke-screen"]  # nothing downstream was created
    assert "Stopped after screen" in (out / "index.html").read_text()


def test_a_stream_that_names_its_arms_goes_on_with_the_lowest_loss_model_when_dropout_helps_none(cache_dir, tmp_path, capsys):
    import pandas as pd

    def edit(text: str) -> str:
        text = text.replace("steps = 500\n\n[confirm]\nsteps = 500", "steps = 12\n\n[confirm]\nsteps = 12")
        text = text[:text.index("[probe]")] + text[text.index("[stream]"):]  # no probe: quicker
        return text.replace("stage_steps = 120", 'stage_steps = 15\ndropout_rates = [0.0, 0.1]\n'
                            'decays = ["d:0.2:0.0:cosine"]')
    config, out = smoke_file(tmp_path, cache_dir, edit), tmp_path / "run"
    assert cli.main(["workflow", str(config), "--output-dir", str(out)]) == 0
    record = json.loads((out / "workflow.json").read_text())
    assert record["status"] == "done" and record["stopped"] is None
    assert not any(s["candidate"] for s in record["stages"]["screen"]["selection"])
    why = record["decisions"][0]["why"]
    assert "no interior, nonzero optimum" in why and "names its own rates and decays" in why
    # the oracle: the lowest mean val loss of any (model, rate) in the screen's own metrics
    screen = pd.read_json(out / "screen" / "metrics.jsonl", lines=True)
    best = screen.groupby(["model", "dropout"])["val_loss"].mean().idxmin()[0]
    assert record["decisions"][0]["chosen"] == best
    stream = studies_of(out)["smoke-stream"].user_attrs["config"]
    assert stream["settings"]["dropout_rates"] == [0.0, 0.1] and stream["grid"]["arm"] == ["static:0", "static:0.1", "d"]
    assert len(studies_of(out)["smoke-stream"].get_trials(states=(TrialState.COMPLETE,))) == 3 * 3


def test_dry_run_prints_every_stage_and_a_time_and_trains_nothing(cache_dir, tmp_path, capsys):
    config = smoke_file(tmp_path, cache_dir)
    assert cli.main(["workflow", str(config), "--output-dir", str(tmp_path / "run"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    # the estimate's size depends on how busy the machine is; what it is made of does not
    durations = {}
    for stage in ("screen", "confirm", "probe", "stream"):
        found = re.search(rf"^  {stage}: .*; about {CLOCK}$", printed, re.M)
        assert found, printed
        durations[stage] = seconds(found.group(1))
    total = re.search(rf"total for one worker: about {CLOCK} ", printed)
    assert total and not (tmp_path / "run").exists()
    # each figure is rounded down, to the second (to the minute past an hour)
    assert abs(seconds(total.group(1)) - sum(durations.values())) <= 60 * len(durations)
    assert all(d > 0 for d in durations.values())


CLOCK = r"(\d+h\d\dm|\d+m\d\ds)"  # common/console.clock


def seconds(clock: str) -> int:
    h, m, s = re.fullmatch(r"(?:(\d+)h)?(\d+)m(?:(\d+)s)?", clock).groups()
    return int(h or 0) * 3600 + int(m) * 60 + int(s or 0)


@pytest.mark.parametrize("text, message", [
    ("[workflow]\n[screen]\n", "a workflow needs a [confirm] table"),
    ("[workflow]\n[screen]\n[confirm]\n[stream]\n[tune]\n", "unknown tables tune"),
    ("[workflow]\nsteppz = 3\n[screen]\n[confirm]\n[stream]\n", "[workflow] has unknown keys steppz"),
    ("stage = 'screen'\n", "is not a workflow file"),
])
def test_bad_workflow_files_are_refused_in_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert cli.main(["workflow", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not Path("runs").exists() or not any(Path("runs").glob("bad-*"))


def test_the_seed_scale_model_matches_the_seeds_ratios_and_says_what_it_does_not_match():
    """studies/seed_scale_model.toml against studies/workflow.toml (the seed's commands), from
    the files alone: every ratio that governs overfitting within 3% (the screened models' sizes
    within 7%: 2x4x48 is the nearest shape to the seed's 0.344), the rest named with a reason."""
    from dropout_decay.design.plan import load_workflow
    from dropout_decay.design.scale import numbers, side_by_side

    wf = load_workflow("seed_scale_model")
    ours, seed = numbers(wf, "2x4x96"), numbers(load_workflow("workflow"), "12x8x384")
    assert [w for w, _ in ours] == [w for w, _ in seed] and len(ours) == 20
    for (what, a), (_, b) in zip(ours, seed):
        assert a == pytest.approx(b, rel=0.07 if what.startswith("screen model") else 0.03), what
    assert dict(seed)["stream cap 1: passes in its segment"] == pytest.approx(1000 * 8192 / 5_000_000)
    assert dict(seed)["stream cap 4: tokens per parameter"] == pytest.approx(40_000_000 / 24_379_392)
    lines = "\n".join(side_by_side(wf))
    for unmatched in ("width_and_depth", "vocabulary_share", "batch", "learning_rate"):
        assert f"      {unmatched}: " in lines
