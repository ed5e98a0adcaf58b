"""One table of every recorded knob (design/knobs.py): it covers every setting, and a knob added
later with its default leaves every stored study's fingerprint as it was; every committed study
under docs/results/ recomputes its fingerprint and, restored into a storage, resumes with nothing
left to train."""

import json
from dataclasses import field, fields, make_dataclass, replace
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from dropout_decay.design import knobs
from dropout_decay.design.settings import Settings
from dropout_decay.sweep.grid import grid_status
from dropout_decay.sweep.provenance import manifest_identity
from dropout_decay.sweep.storage import open_storage, open_study
from dropout_decay.training.trainer import TrainConfig

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
COMMITTED = sorted(p for p in RESULTS.glob("*/*/config.json"))


def stored(path: Path) -> tuple[dict, Settings]:
    config = json.loads(path.read_text())
    return config, Settings.from_dict(config["settings"])


def test_the_table_names_real_knobs_and_every_knob_without_a_row_came_after_the_first_fingerprint():
    settings, training = {f.name for f in fields(Settings)}, {f.name for f in fields(TrainConfig)}
    assert set(knobs.SETTINGS) <= settings and set(knobs.TRAINING) <= training
    # the knobs added since 0.3 that shape results: each is left out of a fingerprint at its absent value
    assert settings - set(knobs.SETTINGS) == {"order_seeds", "fixed_pool_controls", "matched_statics", "claims",
                                              "memory_budget", "max_tokens_seen"}
    assert training - set(knobs.TRAINING) == {"micro_batch"}


def test_there_are_committed_studies_of_every_stage_to_check():
    assert len(COMMITTED) >= 10
    assert {json.loads(p.read_text())["stage"] for p in COMMITTED} == {"screen", "confirm", "probe", "stream", "map"}


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_every_committed_study_recomputes_its_stored_fingerprint(path):
    config, s = stored(path)
    assert s.fingerprint(manifest_identity(config["data"]["manifest"])) == config["fingerprint"]


def test_a_knob_added_with_its_default_leaves_every_fingerprint_unchanged_and_moves_it_when_set():
    """Simulate the next knob: a new field with a default, and nothing else."""
    wider = make_dataclass("Wider", [("new_knob", int, field(default=7))], bases=(Settings,), frozen=True)
    for path in COMMITTED:
        config, s = stored(path)
        data = manifest_identity(config["data"]["manifest"])
        as_added = wider(**{f.name: getattr(s, f.name) for f in fields(Settings)})
        assert as_added.fingerprint(data) == config["fingerprint"], path
        assert replace(as_added, new_knob=8).fingerprint(data) != config["fingerprint"], path


def test_a_knob_outside_the_identity_never_moves_the_fingerprint():
    config, s = stored(COMMITTED[0])
    data = manifest_identity(config["data"]["manifest"])
    assert replace(s, cache_dir="/elsewhere", corpus="x.txt").fingerprint(data) == config["fingerprint"]
    assert replace(s, grid_seed=s.grid_seed + 1).fingerprint(data) != config["fingerprint"]


def restore(stage_dir: Path, url: str) -> optuna.Study:
    """The committed stage as a storage: its config and one COMPLETE trial per published point,
    on the grid id the study's own sampler gives that point."""
    config = json.loads((stage_dir / "config.json").read_text())
    study = open_study(open_storage(url), "restored", config)
    ids = {tuple(sorted(study.sampler.point(i).items())): i for i in range(study.sampler.size)}
    rows = [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]
    grid = config["grid"]
    for number in sorted({r["trial"] for r in rows}):
        last = max((r for r in rows if r["trial"] == number), key=lambda r: r["segment"])
        params = {k: (last["cap"] if k == "tokens" else last[k]) for k in grid}
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=last["val_loss"], params=params,
                                     distributions={k: CategoricalDistribution(grid[k]) for k in grid},
                                     system_attrs={"grid_id": ids[tuple(sorted(params.items()))]}))
    return study


@pytest.mark.parametrize("run", sorted({p.parent.parent.name for p in COMMITTED}))
def test_every_committed_study_resumes_with_nothing_left_to_train(run, tmp_path):
    for path in (p for p in COMMITTED if p.parent.parent.name == run):
        url = f"sqlite:///{tmp_path / (path.parent.name + '.db')}"
        study = restore(path.parent, url)
        config = json.loads(path.read_text())
        again = open_study(open_storage(url), "restored", config)  # what a rerun of its command opens
        status = grid_status(again, again.sampler.size)
        assert (status.complete, status.left, status.failed) == (config["grid_size"], 0, 0), path
        assert again.sampler.size == study.sampler.size == config["grid_size"]
