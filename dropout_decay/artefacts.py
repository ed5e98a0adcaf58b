"""Every artefact of a run, rebuilt from the study storage alone.

Files are written atomically with stable formatting, so exporting a copy of the storage
gives the same bytes. Where a grid point has several COMPLETE trials (a duplicate at the
tail of a multi-worker run), the first one counts: results are keyed on params.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from .files import write_json, write_text
from .runner import checkpoint, load_config
from .selection import select_models

METRICS = ("train_loss", "val_loss", "gap")


def _clean(obj):
    """NaN/inf -> None so the JSON files are strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(_clean(r), sort_keys=True) + "\n" for r in rows)


def _csv(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def first_complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    seen, out = set(), []
    for t in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        key = tuple(sorted(t.params.items()))
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def point_fields(config: dict, params: dict) -> dict:
    shapes = {m["label"]: m["shape"] for m in config["models"]}
    out = {"run_stage": config["stage"], "model": params.get("model"), "model_shape": shapes.get(params.get("model")),
           "seed": params.get("seed")}
    out |= {"arm": params.get("arm")} if config["stage"] == "stream" else {"dropout": params.get("dropout")}
    return out | {"device": config["compliance"]["device"], "mps_compliant": config["compliance"]["mps_compliant"]}


def metrics_rows(study: optuna.Study, config: dict) -> list[dict]:
    rows = []
    for t in first_complete(study):
        for stage in t.user_attrs.get("stages", []):
            rows.append(point_fields(config, t.params) | {
                "stage": stage["stage"], "cap": stage["cap"], "step": stage["step"], "dropout_in_force": stage["dropout_in_force"],
                **{k: stage[k] for k in METRICS}, "trial": t.number})
    key = "arm" if config["stage"] == "stream" else "dropout"
    return sorted(rows, key=lambda r: (r["model"], str(r[key]) if key == "arm" else r[key], r["cap"], r["seed"], r["stage"]))


def trace_rows(study: optuna.Study, config: dict) -> list[dict]:
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if "trace" not in t.user_attrs:
            continue
        head = point_fields(config, t.params) | {"trial": t.number, "state": t.state.name}
        rows.extend(head | r for r in t.user_attrs["trace"])
    return rows


def summarise(metrics: pd.DataFrame, config: dict) -> pd.DataFrame:
    key = "arm" if config["stage"] == "stream" else "dropout"
    by = ["model", "model_shape", key, "stage", "cap"]
    g = metrics.groupby(by, sort=True)
    out = g.size().rename("n").to_frame()
    for m in METRICS:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1)
    out = out.reset_index()
    out.insert(0, "run_stage", config["stage"])
    out["device"], out["mps_compliant"] = config["compliance"]["device"], config["compliance"]["mps_compliant"]
    return out


def export(study: optuna.Study, out_dir: str | Path) -> dict:
    """Write config.json, metrics.jsonl, trace.jsonl, summary.csv/json and, for static sweeps,
    model_selection.csv/json. Returns the paths written."""
    out = Path(out_dir)
    checkpoint(study)
    config = load_config(study)
    written = {}

    def put(name: str, text: str) -> None:
        write_text(out / name, text)
        written[name] = out / name

    write_json(out / "config.json", _clean(config))
    written["config.json"] = out / "config.json"
    metrics = metrics_rows(study, config)
    put("metrics.jsonl", _jsonl(metrics))
    put("trace.jsonl", _jsonl(trace_rows(study, config)))
    if not metrics:
        return written
    frame = pd.DataFrame(metrics)
    summary = summarise(frame, config)
    put("summary.csv", _csv(summary))
    write_json(out / "summary.json", _clean(summary.to_dict(orient="records")))
    written["summary.json"] = out / "summary.json"
    if config["stage"] != "stream":
        selection = select_models(frame, config["settings"]["plateau_delta"])
        for rec in selection:
            rec["mps_compliant"] = config["compliance"]["mps_compliant"]
        write_json(out / "model_selection.json", _clean(selection))
        flat = [{k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in rec.items() if k != "quadratic_fit"}
                | {f"quad_{k}": v for k, v in rec["quadratic_fit"].items() if k != "points"} for rec in selection]
        put("model_selection.csv", _csv(pd.DataFrame(flat)))
        written["model_selection.json"] = out / "model_selection.json"
    return written
