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

from .comparison import compare_arms
from .dashboard import refresh_note, replay_note, static_note, stream_note
from .files import write_json, write_text
from .grid import first_complete
from .replay import replay_rows
from .report import comparison_table, static_figures, stream_figures, write_report
from .runner import checkpoint, load_config
from .schedules import parse_decays
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


def _flat(records: list[dict], drop=()) -> pd.DataFrame:
    """Lists become space-separated strings so the CSV stays one row per record."""
    def cell(v):
        return " ".join("nan" if x is None else str(x) for x in v) if isinstance(v, list) else v

    return pd.DataFrame([{k: cell(v) for k, v in r.items() if k not in drop} for r in records])


def analyse(study: optuna.Study) -> dict:
    """Everything derived from the storage: metrics, summary, model selection (static sweeps)
    or the paired comparison (stream), replay rows (replays), and the dashboard note."""
    config = load_config(study)
    a = {"config": config, "metrics": metrics_rows(study, config), "trace": trace_rows(study, config), "note": ""}
    if not a["metrics"]:
        return a
    frame = pd.DataFrame(a["metrics"])
    a["frame"], a["summary"] = frame, summarise(frame, config)
    device, compliant = config["compliance"]["device"], config["compliance"]["mps_compliant"]
    if config["stage"] != "stream":
        a["selection"] = [r | {"mps_compliant": compliant}
                          for r in select_models(frame, config["settings"]["plateau_delta"])]
        a["note"] = static_note(config, a["selection"])
    else:
        decays = [d.name for d in parse_decays(config["settings"]["decays"])]
        a["comparison"] = [r | {"device": device, "mps_compliant": compliant} for r in compare_arms(frame, decays)]
        a["note"] = stream_note(config, a["comparison"])
    if "replay_of" in config:
        original = optuna.load_study(study_name=config["replay_of"], storage=study._storage)
        a["replay"] = replay_rows(original, study)
        a["note"] += replay_note(config["replay_of"], a["replay"])
    return a


def export(study: optuna.Study, out_dir: str | Path) -> dict:
    """Write config.json, metrics.jsonl, trace.jsonl, summary.csv/json, report.html, and
    model_selection.csv/json (static sweeps) or comparison.csv/json (stream), plus replay.csv/json
    for a replay study; refresh the study's dashboard note. Returns the paths written."""
    out = Path(out_dir)
    checkpoint(study)
    a = analyse(study)
    config = a["config"]
    written = {}

    def put(name: str, content) -> None:
        if isinstance(content, str):
            write_text(out / name, content)
        else:
            write_json(out / name, _clean(content))
        written[name] = out / name

    put("config.json", config)
    put("metrics.jsonl", _jsonl(a["metrics"]))
    put("trace.jsonl", _jsonl(a["trace"]))
    if not a["metrics"]:
        return written
    put("summary.csv", _csv(a["summary"]))
    put("summary.json", a["summary"].to_dict(orient="records"))
    if "selection" in a:
        selection = a["selection"]
        put("model_selection.json", selection)
        quad = pd.DataFrame([{f"quad_{k}": v for k, v in r["quadratic_fit"].items() if k != "points"} for r in selection])
        put("model_selection.csv", _csv(pd.concat([_flat(selection, drop=("quadratic_fit",)), quad], axis=1)))
        figures, table = static_figures(a["frame"], selection), ""
    else:
        put("comparison.json", a["comparison"])
        if a["comparison"]:
            put("comparison.csv", _csv(_flat(a["comparison"])))
        figures, table = stream_figures(a["summary"], a["comparison"]), comparison_table(a["comparison"])
    if "replay" in a:
        put("replay.json", a["replay"])
        put("replay.csv", _csv(pd.DataFrame(a["replay"])))
    written["report.html"] = write_report(out / "report.html", config, figures, table)
    refresh_note(study, a["note"])
    return written
