"""Every artefact of a run, rebuilt from the study storage alone, and written as one set.

The files are rendered in memory, written into `.export-new/` beside them with `export.json`
(the storage state they describe and every file's sha256), then moved into place. A crash
while writing leaves the previous complete set; a crash while moving leaves a complete new set
in `.export-new/` that the next export moves first. Formatting is stable, so exporting a copy
of the storage gives the same bytes. Where a grid point has several COMPLETE trials (a
duplicate at the tail of a multi-worker run), the first one counts: results are keyed on params.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
from pathlib import Path

import optuna
import pandas as pd

from ..sweep.attachments import attach_study
from ..analysis.comparison import by_replicate, claims, compare_arms
from ..common.files import write_text
from ..sweep.grid import first_complete
from .notes import headline, probe_note, refresh_note, replay_note, static_note, stream_note
from ..analysis.probe import analyse_probe
from ..sweep.provenance import load_config
from ..sweep.replay import replay_rows
from .page import ensure_plotly, report_page
from ..common.stages import Stage
from ..model.arms import Arm, ArmKind
from ..model.schedules import parse_decays
from ..analysis.interaction import interaction
from ..analysis.primary import judge
from ..analysis.selection import select_models
from ..sweep.optuna_internals import storage_of
from ..sweep.storage import checkpoint

METRICS = ("train_loss", "val_loss", "gap", "test_loss")
PENDING = ".export-new"


def _clean(obj):
    """NaN/inf -> None so the JSON files are strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _json(obj) -> str:
    """Stable JSON (sorted keys, 2-space indent, trailing newline) so exports compare byte for byte."""
    return json.dumps(_clean(obj), indent=2, sort_keys=True) + "\n"


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(_clean(r), sort_keys=True) + "\n" for r in rows)


def _csv(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def _flat(records: list[dict], drop=()) -> pd.DataFrame:
    """Lists become space-separated strings so the CSV stays one row per record."""
    def cell(v):
        return " ".join("nan" if x is None else str(x) for x in v) if isinstance(v, list) else v

    return pd.DataFrame([{k: cell(v) for k, v in r.items() if k not in drop} for r in records])


def arm_key(config: dict) -> str:
    return Stage(config["stage"]).arm_key


def point_fields(config: dict, params: dict) -> dict:
    shapes = {m["label"]: m["shape"] for m in config["models"]}
    key = arm_key(config)
    return {"stage": config["stage"], "model": params.get("model"), "model_shape": shapes.get(params.get("model")),
            "seed": params.get("seed"), "order_seed": params.get("order_seed", config["settings"].get("order_seed", 0)),
            key: params.get(key),
            "device": config["compliance"]["device"], "mps_compliant": config["compliance"]["mps_compliant"]}


def metrics_rows(study: optuna.Study, config: dict) -> list[dict]:
    rows = []
    for t in first_complete(study):
        for seg in t.user_attrs.get("segments", t.user_attrs.get("stages", [])):  # "stages": before 0.2
            rows.append(point_fields(config, t.params) | {
                "segment": seg.get("segment", seg.get("stage")), "cap": seg["cap"], "step": seg["step"],
                "tokens": seg.get("tokens"), "dropout_in_force": seg["dropout_in_force"],
                **{k: seg.get(k) for k in METRICS}, "trial": t.number})
    key = arm_key(config)
    return sorted(rows, key=lambda r: (r["model"], str(r[key]) if key == "arm" else r[key], r["cap"], r["seed"],
                                       r["order_seed"], r["segment"]))


def trace_rows(study: optuna.Study, config: dict) -> list[dict]:
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if "trace" not in t.user_attrs:
            continue
        head = point_fields(config, t.params) | {"trial": t.number, "state": t.state.name}
        rows.extend(head | r for r in t.user_attrs["trace"])
    return rows


def summarise(metrics: pd.DataFrame, config: dict) -> pd.DataFrame:
    by = ["model", "model_shape", arm_key(config), "segment", "cap"]
    g = metrics.groupby(by, sort=True)
    out = g.size().rename("n").to_frame()
    for m in METRICS:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1)
    out = out.reset_index()
    out.insert(0, "stage", config["stage"])
    out["device"], out["mps_compliant"] = config["compliance"]["device"], config["compliance"]["mps_compliant"]
    return out


def analyse(study: optuna.Study) -> dict:
    """Everything derived from the storage: metrics, summary, model selection (static sweeps),
    the probe's optima and law (probe), the paired comparison (stream), replay rows (replays),
    and the dashboard note."""
    config = load_config(study)
    a = {"config": config, "metrics": metrics_rows(study, config), "trace": trace_rows(study, config), "note": ""}
    if not a["metrics"]:
        return a
    frame = pd.DataFrame(a["metrics"])
    a["frame"], a["summary"] = frame, summarise(frame, config)
    device, compliant = config["compliance"]["device"], config["compliance"]["mps_compliant"]
    settings = config["settings"]
    stage = Stage(config["stage"])
    if stage.sweeps_statics:
        a["selection"] = [r | {"mps_compliant": compliant} for r in select_models(by_replicate(frame), settings["plateau_delta"])]
        a["note"] = static_note(config, a["selection"])
    elif stage is Stage.PROBE:
        a["probe"] = analyse_probe(by_replicate(frame), config)
        a["note"] = probe_note(config, a["probe"])
    else:
        parsed = parse_decays(settings["decays"], settings.get("calibrations"))
        decays = [d.name for d in parsed]
        calibrated = [d.name for d in parsed if Arm(d).kind is ArmKind.CALIBRATED]
        metric = "test_loss" if frame["test_loss"].notna().all() else "val_loss"  # val: made before the test split
        a["comparison"] = [r | {"device": device, "mps_compliant": compliant}
                           for r in compare_arms(frame, decays, calibrated, metric)]
        a["claims"] = claims(a["comparison"])
        a["interaction"] = interaction(frame, decays, metric)
        a["primary"] = judge(settings.get("claims"), a["comparison"], a["claims"], a["interaction"])
        a["note"] = stream_note(config, a["comparison"], a["primary"], a["interaction"])
    if "replay_of" in config:
        original = optuna.load_study(study_name=config["replay_of"], storage=storage_of(study))
        a["replay"] = replay_rows(original, study)
        a["note"] += replay_note(config["replay_of"], a["replay"])
    return a


def render(a: dict, plotly_src: str) -> dict[str, str]:
    """File name -> content of every artefact."""
    files = {"config.json": _json(a["config"]), "metrics.jsonl": _jsonl(a["metrics"]), "trace.jsonl": _jsonl(a["trace"])}
    if not a["metrics"]:
        return files
    files["summary.csv"] = _csv(a["summary"])
    files["summary.json"] = _json(a["summary"].to_dict(orient="records"))
    if "selection" in a:
        selection = a["selection"]
        files["model_selection.json"] = _json(selection)
        quad = pd.DataFrame([{f"quad_{k}": v for k, v in r["quadratic_fit"].items() if k != "points"} for r in selection])
        files["model_selection.csv"] = _csv(pd.concat([_flat(selection, drop=("quadratic_fit",)), quad], axis=1))
    if "probe" in a:
        files["probe.json"] = _json(a["probe"])
        files["probe.csv"] = _csv(_flat(a["probe"]["caps"], drop=("curve", "quadratic", "bootstrap")))
    if "comparison" in a:
        files["comparison.json"] = _json(a["comparison"])
        if a["comparison"]:
            files["comparison.csv"] = _csv(_flat(a["comparison"]))
            files["claims.json"] = _json(a["claims"])
            files["claims.csv"] = _csv(_flat(a["claims"]))
        for name in ("interaction", "primary"):
            if a[name]:
                files[f"{name}.json"] = _json(a[name])
                files[f"{name}.csv"] = _csv(_flat(a[name]))
    if "replay" in a:
        files["replay.json"] = _json(a["replay"])
        files["replay.csv"] = _csv(pd.DataFrame(a["replay"]))
    files["report.html"] = report_page(a, plotly_src)
    return files


def storage_state(study: optuna.Study) -> str:
    """A digest of every trial's number, state and value: equal digests, same results."""
    h = hashlib.sha256()
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        h.update(f"{t.number}:{t.state.name}:{t.value!r}\n".encode())
    return h.hexdigest()[:16]


def _move_pending(out: Path) -> None:
    """Finish an export whose files were all written but not all moved into place."""
    pending = out / PENDING
    if (pending / "export.json").is_file():
        for f in sorted(pending.iterdir()):
            os.replace(f, out / f.name)
    shutil.rmtree(pending, ignore_errors=True)


def export(study: optuna.Study, out_dir: str | Path, root: str | Path | None = None) -> dict[str, Path]:
    """Write every artefact of the study into `out_dir` as one set (see the module doc) and
    refresh its dashboard note. `root` is the run folder (default `out_dir`; a workflow's
    stages share theirs): it holds the one copy of plotly.js and the artifact store.
    Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _move_pending(out)
    checkpoint(study)
    a = analyse(study)
    root = Path(root) if root else out
    files = render(a, os.path.relpath(ensure_plotly(root), out))
    stamp = {"study": study.study_name, "storage_state": storage_state(study), "answer": headline(a),
             "files": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in sorted(files.items())}}
    pending = out / PENDING  # emptied by _move_pending above
    for name, text in files.items():
        write_text(pending / name, text)
    write_text(pending / "export.json", _json(stamp))  # last: the set is complete
    _move_pending(out)
    refresh_note(study, a["note"])
    attach_study(study, root)
    return {name: out / name for name in [*files, "export.json"]}
