"""What a study's storage says, derived once: the `Analysis` every artefact, page and note is
written from, and the decisions a workflow takes between stages.

Which fields are filled depends on the stage: `selection` for screen and confirm, `map` for a
map, `probe` and `map` for a probe (a map of one pass count), `comparison`, `claims`,
`interaction`, `trajectory` and `primary` for a stream, `replay` for a replay; the others stay None. A study with no finished point has only its config, empty metrics and trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import pandas as pd

from ..analysis import (analyse_map, analyse_probe, by_replicate, claims, compare_arms, compare_trajectory,
                        fixed_pool_interaction, judge, select_models)
from ..common import Stage
from ..model import Arm, ArmKind, parse_decays
from ..sweep import first_complete, load_config, replay_rows, storage_of
from .notes import map_note, probe_note, replay_note, static_note, stream_note

METRICS = ("train_loss", "val_loss", "gap", "test_loss")


@dataclass
class Analysis:
    config: dict  # the study's stored config
    metrics: list[dict]  # metrics.jsonl: one row per point and segment
    trace: list[dict]  # trace.jsonl
    note: str = ""  # the dashboard note
    frame: pd.DataFrame | None = None  # metrics as a table
    summary: pd.DataFrame | None = None  # summary.csv
    selection: list[dict] | None = None  # screen, confirm: model_selection
    probe: dict | None = None  # probe: per-cap optima and the law
    map: dict | None = None  # map: its cells and the pressure laws fitted to them
    comparison: list[dict] | None = None  # stream: paired decay - other arm rows
    claims: list[dict] | None = None  # stream: one verdict per decay and cap
    interaction: list[dict] | None = None  # stream with fixed-pool twins
    trajectory: dict | None = None  # stream: comparison, claims, interaction on the mean over caps
    primary: list[dict] | None = None  # stream: the declared claims, judged
    replay: list[dict] | None = None  # a replay: per point, stored against new


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


def analyse(study: optuna.Study) -> Analysis:
    """Everything derived from the storage: metrics, summary, and what the stage answers."""
    config = load_config(study)
    a = Analysis(config, metrics_rows(study, config), trace_rows(study, config))
    if not a.metrics:
        return a
    a.frame = pd.DataFrame(a.metrics)
    a.summary = summarise(a.frame, config)
    stage = Stage(config["stage"])
    if stage.sweeps_statics:
        _selection(a)
    elif stage is Stage.PROBE:  # a one-row map (one pass count) with its own refined optima and law p*(D)
        a.probe = analyse_probe(by_replicate(a.frame), config)
        a.map = analyse_map(by_replicate(a.frame), config)
        a.note = probe_note(config, a.probe)
    elif stage is Stage.MAP:
        a.map = analyse_map(by_replicate(a.frame), config)
        a.note = map_note(a.map)
    else:
        _comparison(a)
    if "replay_of" in config:
        original = optuna.load_study(study_name=config["replay_of"], storage=storage_of(study))
        a.replay = replay_rows(original, study)
        a.note += replay_note(config["replay_of"], a.replay)
    return a


def _selection(a: Analysis) -> None:
    compliant = a.config["compliance"]["mps_compliant"]
    a.selection = [r | {"mps_compliant": compliant}
                   for r in select_models(by_replicate(a.frame), a.config["settings"]["plateau_delta"])]
    a.note = static_note(a.config, a.selection)


def _comparison(a: Analysis) -> None:
    """The stream's paired comparison, claims, interaction and declared claims, judged on test
    loss (validation for studies made before the test split)."""
    settings, compliance = a.config["settings"], a.config["compliance"]
    parsed = parse_decays(settings["decays"], settings.get("calibrations"))
    decays = [d.name for d in parsed]
    calibrated = [d.name for d in parsed if Arm(d).kind is ArmKind.CALIBRATED]
    metric = "test_loss" if a.frame["test_loss"].notna().all() else "val_loss"
    a.comparison = [r | {"device": compliance["device"], "mps_compliant": compliance["mps_compliant"]}
                    for r in compare_arms(a.frame, decays, calibrated, metric)]
    a.claims = claims(a.comparison)
    a.interaction = fixed_pool_interaction(a.frame, decays, metric)
    a.trajectory = compare_trajectory(a.frame, decays, calibrated, metric)
    a.primary = judge(settings.get("claims"), a.comparison, a.claims, a.interaction, a.trajectory)
    a.note = stream_note(a.config, a.comparison, a.primary, a.interaction)
