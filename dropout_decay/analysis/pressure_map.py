"""A map's answer: the best static rate p* in every (unique tokens U, passes) cell, with intervals.

A cell is one model, one token limit U and one pass count (a map's point is evaluated at each
of its pass counts in turn; a probe's and a screen's at one). In each cell, over seeds:

* `p_star`: the swept rate of lowest mean validation loss (decisions use validation);
* `p_star_low/high`: a 95% percentile bootstrap of that argmin over seeds, the same resampled
  seeds at every rate (exact over every distinct resample with its multinomial weight when
  there are at most 1,000 of them, as with 3 seeds, else 1,000 random ones: probe.resamples);
* `gain`: mean val loss at p* minus at p = 0 (≤ 0; how much dropout helps there), paired by seed,
  with its bootstrap interval (p* held at the full sample's choice), and `test_gain`, the same
  on the held-out test loss, for reading only;
* the pressure coordinates x = log10(P/U), y = log10(C/U) of the cell (model/pressure.py), C the
  tokens the optimiser has seen when the cell's evaluation is made.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..common import stage_of
from ..model import PRESSURE_FORMS, is_twin, regime_of, static_rate
from .pressure_law import fit_with_error
from .probe import LEVEL, bootstrap_method, resamples, weighted_quantiles

QUANTILES = ((1 - LEVEL) / 2, (1 + LEVEL) / 2)


def pass_counts(settings: dict) -> list[float]:
    passes = settings.get("passes")
    return list(passes) if isinstance(passes, list) else [passes]


def cell_frame(metrics: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The metrics rows of any stored stage with their cell and a `dropout` column: a map's or a
    probe's requested pass count of their segment, else the passes the point made (a screen's
    steps over its limit; in a stream each cap of the growing pool, from its static arms only,
    C counting every token since step 0)."""
    frame = metrics.copy()
    stage = stage_of(config["stage"])
    if stage.is_stream:
        frame = frame[~frame["arm"].map(is_twin)]
        frame = frame.assign(dropout=frame["arm"].map(static_rate)).dropna(subset=["dropout"])
    counts = pass_counts(config["settings"])
    if stage.counts_passes:
        frame["passes"] = [float(counts[int(i)]) for i in frame["segment"]]
    else:
        frame["passes"] = (frame["tokens"] / frame["cap"]).round(3)
    return frame


def analyse_cell(val: pd.DataFrame, test: pd.DataFrame | None, seed: int = 0) -> dict:
    """`val`, `test`: loss tables of one cell, rows = seeds, columns = rates (sorted, 0 among them)."""
    rates = val.columns.to_numpy(float)
    means = val.mean(axis=0).to_numpy(float)
    best = int(np.argmin(means))
    zero = int(np.flatnonzero(rates == 0.0)[0]) if (rates == 0.0).any() else None
    n = val.shape[0]
    rows, weights = resamples(n, seed)
    values = val.to_numpy(float)
    boot_means = np.stack([values[idx].mean(axis=0) for idx in rows])
    boot_p = rates[np.argmin(boot_means, axis=1)]
    low, high = weighted_quantiles(boot_p, weights, QUANTILES) if n > 1 else (None, None)
    out = {"n_seeds": n, "p_star": float(rates[best]), "p_star_low": low, "p_star_high": high,
           "val_loss_p_star": float(means[best]), "at_top": best == len(rates) - 1,
           "bootstrap": bootstrap_method(n, len(rows)),
           "curve": {"rates": rates.tolist(), "mean_val_loss": means.tolist()}}
    if zero is None:
        return out | {"val_loss_p0": None, "gain": None, "gain_low": None, "gain_high": None, "test_gain": None}
    diffs = values[:, best] - values[:, zero]
    boot_gain = np.array([diffs[idx].mean() for idx in rows])
    g_low, g_high = weighted_quantiles(boot_gain, weights, QUANTILES) if n > 1 else (None, None)
    test_gain = None
    if test is not None and not test.isna().to_numpy().any():
        t = test.reindex(columns=val.columns).to_numpy(float)
        test_gain = float(np.mean(t[:, best] - t[:, zero]))
    return out | {"val_loss_p0": float(means[zero]), "gain": float(diffs.mean()), "gain_low": g_low,
                  "gain_high": g_high, "test_gain": test_gain}


def map_cells(metrics: pd.DataFrame, config: dict) -> list[dict]:
    """One row per (model, U, passes) cell: its optimum, gain and pressure coordinates."""
    params = {m["label"]: m["parameters"] for m in config["models"]}
    frame = cell_frame(metrics, config)
    cells = []
    for (model, cap, passes), at in frame.groupby(["model", "cap", "passes"], sort=True):
        val = at.pivot_table(index=["seed", "order_seed"], columns="dropout", values="val_loss", aggfunc="first")
        val = val.sort_index(axis=1).dropna()
        if val.shape[1] < 2 or val.empty:
            continue
        test = at.pivot_table(index=["seed", "order_seed"], columns="dropout", values="test_loss",
                              aggfunc="first").reindex(index=val.index) if "test_loss" in at and at["test_loss"].notna().any() else None
        p, seen = params[model], float(at["tokens"].mean())
        cells.append({"model": model, "parameters": p, "unique_tokens": int(cap), "passes": passes,
                      "steps": int(at["step"].max()), "tokens_seen": int(seen), "tokens_per_parameter": cap / p,
                      "x": math.log10(p / cap), "y": math.log10(seen / cap), **analyse_cell(val, test)})
    return cells


def describe_map(cells: list[dict]) -> str:
    """Where dropout helps: the cells whose p* > 0 with a gain interval below 0, and where p* = 0."""
    helps = [c for c in cells if c["p_star"] > 0 and c["gain_high"] is not None and c["gain_high"] < 0]
    zero = [c for c in cells if c["p_star"] == 0]
    def where(cs):
        return ", ".join(f"{c['unique_tokens']:,}x{c['passes']:g}" for c in cs) or "none"
    return (f"{len(cells)} cells; p* > 0 with its gain's interval below 0 in {len(helps)} ({where(helps)}); "
            f"p* = 0 in {len(zero)} ({where(zero)})")


def analyse_map(metrics: pd.DataFrame, config: dict) -> dict:
    """The cells, a sentence saying where dropout helps, and both forms of the pressure law
    (or why one could not be fitted), each with the regime it is valid for."""
    cells = map_cells(metrics, config)
    rates = sorted(float(r) for r in metrics["dropout"].unique())
    where = regime_of(config)
    laws = {}
    for form in PRESSURE_FORMS:
        try:
            laws[form] = fit_with_error(cells, form, (rates[0], rates[-1])) | {"regime": where, "fitted_on": [
                {"study_stage": config["stage"], "fingerprint": config["fingerprint"], "cells": len(cells)}]}
        except ValueError as e:
            laws[form] = {"form": form, "reason": str(e)}
    return {"cells": cells, "description": describe_map(cells), "laws": laws, "regime": where}
