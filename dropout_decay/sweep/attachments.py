"""What optuna-dashboard shows beyond params and user attrs: Optuna artifacts in the run folder.

The study gets its config as a file (a user attr is cut at 1,024 characters in the dashboard);
each trial gets its evaluation trace (JSON lines) and its learning curve (SVG) as it ends. The
store is `<run>/artifacts`, which `dashboard` hands to optuna-dashboard. The storage stays the
source of truth: these are views of what the trial's user attrs hold.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta, upload_artifact

from ..common import line_chart
from .optuna_internals import storage_of
from .provenance import load_config

ARTIFACTS = "artifacts"


def _upload(store, target, storage, folder: Path, name: str, text: str, mimetype: str) -> None:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=target, storage=storage, mimetype=mimetype)


def curve_svg(number: int, params: dict, trace: list[dict]) -> str:
    evals = [r for r in trace if r["kind"] == "eval"]
    train = [r for r in trace if r["kind"] == "train"]
    series = [{"name": "val loss", "x": [r["tokens"] for r in evals], "y": [r["val_loss"] for r in evals], "markers": True},
              {"name": "train loss (eval)", "x": [r["tokens"] for r in evals], "y": [r["train_loss"] for r in evals],
               "dash": "dot"},
              {"name": "train loss (running)", "x": [r["tokens"] for r in train], "y": [r["loss"] for r in train],
               "width": 1, "opacity": 0.5}]
    point = " ".join(f"{k}={v}" for k, v in params.items())
    return line_chart(series, f"trial {number}: {point}", "tokens seen", "loss (nats)")


def store_of(out: Path) -> FileSystemArtifactStore:
    folder = Path(out) / ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def attach_trial(trial: optuna.Trial, trace: list[dict], out: Path) -> None:
    """The trial's trace and learning curve, attached while it still runs (Optuna refuses
    artifacts on finished trials), so each worker writes into its own output folder's store."""
    if not trace:
        return
    store = store_of(out)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _upload(store, trial, None, folder, f"trace-{trial.number}.jsonl",
                "".join(json.dumps(r) + "\n" for r in trace), "application/jsonl")
        _upload(store, trial, None, folder, f"curve-{trial.number}.svg", curve_svg(trial.number, trial.params, trace),
                "image/svg+xml")


def attach_study(study: optuna.Study, out: Path) -> None:
    """The study's config, once."""
    if get_all_artifact_meta(study, storage=storage_of(study)):
        return
    with tempfile.TemporaryDirectory() as tmp:
        _upload(store_of(out), study, storage_of(study), Path(tmp), "config.json",
                json.dumps(load_config(study), indent=2, sort_keys=True), "application/json")
