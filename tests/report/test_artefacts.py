"""Artefacts (report/artefacts.py): a set written whole or not at all, export.json's storage state,
byte-identical exports of a copied storage and of a study from before 0.2."""

import hashlib
import json
import shutil

import pytest

from dropout_decay.cli import main as cli
from dropout_decay.report import artefacts
from dropout_decay.report.artefacts import export
from dropout_decay.report.page import PLOTLY_JS
from tests.conftest import (
    constructed_stream,
    load,
    tiny,
)


def test_a_crash_while_exporting_leaves_the_previous_complete_set(cache_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith("study.db")}
    written = []
    original = artefacts.write_text

    def crash_on_the_fourth(path, text):
        written.append(path)
        if len(written) == 4:
            raise OSError("disk full")
        original(path, text)

    monkeypatch.setattr(artefacts, "write_text", crash_on_the_fourth)
    with pytest.raises(OSError):
        artefacts.export(load(out), out)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith("study.db")}
    assert after == before  # the previous set, whole
    monkeypatch.setattr(artefacts, "write_text", original)
    artefacts.export(load(out), out)
    stamp = json.loads((out / "export.json").read_text())
    assert all(hashlib.sha256((out / n).read_bytes()).hexdigest() == h for n, h in stamp["files"].items())
    assert not (out / artefacts.PENDING).exists()


def test_a_set_written_but_not_moved_is_moved_by_the_next_export(cache_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    calls = []
    original = artefacts._move_pending

    def die_after_writing(folder):
        calls.append(folder)
        if len(calls) == 2:  # the move after this export's writes
            raise KeyboardInterrupt
        original(folder)

    monkeypatch.setattr(artefacts, "_move_pending", die_after_writing)
    (out / "metrics.jsonl").write_text("stale\n")
    with pytest.raises(KeyboardInterrupt):
        artefacts.export(load(out), out)
    assert (out / artefacts.PENDING / "export.json").is_file()  # a complete new set waits
    monkeypatch.setattr(artefacts, "_move_pending", original)
    original(out)  # what the next export does first
    assert (out / "metrics.jsonl").read_text().count("\n") == 6 and not (out / artefacts.PENDING).exists()


def test_a_study_from_before_0_2_exports_the_same_artefacts(cache_dir, tmp_path):
    """Its trials name segments "stages"; the export reads them as today's segments."""
    today = constructed_stream(cache_dir, tmp_path / "today")
    old = constructed_stream(cache_dir, tmp_path / "old", legacy=True)
    for name in ("metrics.jsonl", "summary.csv", "comparison.csv", "claims.csv"):
        assert (old / name).read_text() == (today / name).read_text(), name
    rows = json.loads((old / "comparison.json").read_text())
    assert all(r["device"] == "cpu" and r["mps_compliant"] is False for r in rows)  # every row says where it ran


def test_export_json_names_the_storage_state_the_set_describes(cache_dir, tmp_path):
    """export.json's digest recomputed from the trials, and a second export into another
    folder with a shared root: plotly.js lives in the root, the report points there."""
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out, "--seeds", "1")]) == 0
    study = load(out)
    digest = hashlib.sha256("".join(f"{t.number}:{t.state.name}:{t.value!r}\n" for t in
                                    sorted(study.get_trials(), key=lambda t: t.number)).encode()).hexdigest()[:16]
    stamp = json.loads((out / "export.json").read_text())
    assert (stamp["study"], stamp["storage_state"]) == (study.study_name, digest)
    assert stamp["files"]["summary.csv"] == hashlib.sha256((out / "summary.csv").read_bytes()).hexdigest()
    written = export(study, tmp_path / "stage", root=tmp_path / "root")
    assert written["export.json"].is_file() and all(f.is_file() for f in written.values())
    assert (tmp_path / "root" / PLOTLY_JS).is_file() and not (tmp_path / "stage" / PLOTLY_JS).exists()
    assert f'src="../root/{PLOTLY_JS}"' in (tmp_path / "stage" / "report.html").read_text()


def test_export_from_a_copied_storage_is_byte_identical(cache_dir, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out)]) == 0
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(out / "study.db", copy / "study.db")
    assert cli.main(["export", str(copy)]) == 0
    names = sorted(json.loads((out / "export.json").read_text())["files"])
    assert names == ["config.json", "metrics.jsonl", "model_selection.csv", "model_selection.json",
                     "report.html", "summary.csv", "summary.json", "trace.jsonl"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("study.db")) == sorted(
        [*names, "export.json", "plotly.min.js", "artifacts"])
    for name in [*names, "export.json"]:
        assert (copy / name).read_bytes() == (out / name).read_bytes(), name
