"""Replay (sweep/replay.py): zero deltas on a finished tiny stream, old mask forms kept, refusals."""

import json
from pathlib import Path
from types import SimpleNamespace

import optuna

from dropout_decay.cli import main as cli
from dropout_decay.data.cache import load_cache
from dropout_decay.design.settings import Settings
from dropout_decay.model.gpt import parse_model_spec
from dropout_decay.model.schedules import parse_decay
from dropout_decay.report.notes import SEED_IMPORTANCE
from dropout_decay.sweep.provenance import data_identity
from dropout_decay.sweep.storage import open_storage, sqlite_url
from dropout_decay.training.trainer import PointRun, Segment, TrainConfig, train
from tests.conftest import (
    TEST_VOCAB,
    TRAIN,
    load,
    tiny,
)


def optuna_note(run: Path, name: str) -> str:
    from optuna_dashboard import get_note

    return get_note(optuna.load_study(study_name=name, storage=open_storage(sqlite_url(run))))


ROOT = Path(__file__).resolve().parents[2]


def test_replay_of_a_finished_tiny_stream_gives_zero_deltas(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["stream", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir),
                     "--vocab-size", str(TEST_VOCAB), "--models", "winner=1x2x32", "--seeds", "1", "2",
                     "--dropout-rates", "0", "0.1", "--decays", "d:0.3:0.1:linear", "--stream-token-caps", "2000",
                     "4000", "--stage-steps", "15", "--output-dir", str(out), *TRAIN]) == 0
    original = load(out).study_name
    # an independent path to the same number: the trainer called directly, no Optuna, no storage
    cfg = TrainConfig(batch_size=4, seq_len=32, eval_batches=2, eval_every=15, log_every=10)
    direct = train(PointRun(parse_model_spec("1x2x32"), parse_decay("d:0.3:0.1:linear"), [Segment(2000, 15), Segment(4000, 15)],
                            cfg, seed=2), load_cache(cache_dir, TEST_VOCAB))
    [stored] = [t for t in load(out).trials if t.params == {"model": "winner", "seed": 2, "arm": "d"}]
    segments = stored.user_attrs["segments"]  # the trainer's rows, each with its pressure coordinates beside
    assert stored.value == direct[-1]["val_loss"] and [{k: s[k] for k in d} for s, d in zip(segments, direct)] == direct
    assert len(segments) == len(direct) and [s["unique_tokens"] for s in segments] == [2000, 4000]
    assert cli.main(["replay", str(out)]) == 0
    assert "6/6 points bitwise identical, largest |delta val loss| 0" in capsys.readouterr().out
    rows = json.loads((out / f"{original}-replay-1" / "replay.json").read_text())
    assert len(rows) == 6 and all(r["identical"] and r["delta_val_loss"] == 0.0 for r in rows)
    # a filtered replay: one seed, one arm; the original stays the default study of the folder
    assert cli.main(["replay", str(out), "--seeds", "2", "--arms", "d"]) == 0
    [row] = json.loads((out / f"{original}-replay-2" / "replay.json").read_text())
    assert (row["seed"], row["arm"], row["identical"]) == (2, "d", True)
    assert cli.main(["export", str(out)]) == 0 and not (out / "replay.json").exists()
    storage = open_storage(sqlite_url(out))
    assert sorted(optuna.study.get_all_study_names(storage)) == [original, f"{original}-replay-1", f"{original}-replay-2"]
    note = optuna_note(out, f"{original}-replay-1")
    assert "6/6 points bitwise identical, largest |Δ val loss| 0" in note
    verdict = optuna_note(out, original).split("\n\n## Replay")[0].removesuffix(f"\n\n{SEED_IMPORTANCE}")
    assert note.startswith(verdict) and verdict.startswith("## stream: does decaying dropout beat")  # then the replay


def test_a_study_stored_before_mask_forms_keeps_form_1_on_replay_and_its_fingerprint(cache_dir, tmp_path, capsys):
    """0.2 drew masks in form 1 and stored no `dropout_masks`. Such a study must replay bitwise
    (so in form 1, not today's default), and the committed results' fingerprints must still hold."""
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out), "--dropout-masks", "1"]) == 0
    study = load(out)
    config = study.user_attrs["config"]
    del config["settings"]["train"]["dropout_masks"]  # as 0.2 stored it
    study.set_user_attr("config", config)
    capsys.readouterr()
    assert cli.main(["replay", str(out)]) == 0
    assert "6/6 points bitwise identical, largest |delta val loss| 0" in capsys.readouterr().out
    legacy = 0
    for path in sorted((ROOT / "docs" / "results").glob("*/*/config.json")):
        stored = json.loads(path.read_text())
        settings = Settings.from_dict(stored["settings"])
        if "dropout_masks" not in stored["settings"]["train"]:  # made by 0.2: form 1
            legacy += 1
            assert settings.train.dropout_masks == 1
        else:  # made since: the form it stored (the seed scale model: 2, today's default)
            assert settings.train.dropout_masks == stored["settings"]["train"]["dropout_masks"]
        assert settings.fingerprint(data_identity(SimpleNamespace(manifest=stored["data"]["manifest"]))) == stored["fingerprint"]
    assert legacy >= 6  # cpu_workflow's four stages and the two follow-up streams


def test_replay_refuses_what_the_grid_does_not_hold(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    capsys.readouterr()
    assert cli.main(["replay", str(out), "--seeds", "7"]) == 2
    assert capsys.readouterr().err.strip() == "error: --seeds 7 not in the stored grid"
