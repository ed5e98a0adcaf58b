"""The pressure law fitted to cells, and how well it predicts a cell it was not fitted on.

Each cell (pressure_map.py) gives x, y, its optimum p* and its mean validation curve over the
swept rates. The law (model/pressure.py) is fitted by least squares on p* with the clamp inside
the residual (a cell at p* = 0 only asks the line to be at or below p_min there), in two forms:
first-order (D = 0) and with the interaction term. p_min and p_max are the smallest and largest
rates swept (the law never recommends a rate the map did not measure).

Held-out error, leave-one-cell-out: every cell's p* predicted from a fit to the other cells, as
an error in p* and as regret, the cell's mean validation loss at the predicted rate (linear
between swept rates) minus its best. Beside two baselines, held out the same way: the single
static rate of least total regret over the other cells, and the probe's one-variable law p*(D)
with D = U/P tokens per parameter (model/law.py), which cannot see passes.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from ..model import PRESSURE_FORMS, fit_law, pressure_formula, pressure_rate, predict

MIN_CELLS = {"first-order": 4, "interaction": 5}  # parameters + 1, so one cell can be held out


def coefficients(form: str, theta) -> dict:
    a, b, c0, d = (list(theta) + [0.0])[:4] if form == "first-order" else theta
    return {"A": float(a), "B": float(b), "D": float(d) if form == "interaction" else 0.0, "C0": float(c0)}


def fit_pressure(cells: list[dict], form: str, p_range: tuple[float, float]) -> dict:
    """A, B, (D,) C0 of the clamped law through the cells' optima."""
    x = np.array([c["x"] for c in cells], float)
    y = np.array([c["y"] for c in cells], float)
    p = np.array([c["p_star"] for c in cells], float)
    columns = [x, y, np.ones_like(x)] + ([x * y] if form == "interaction" else [])
    design = np.stack(columns, axis=1)
    start = np.linalg.lstsq(design, p, rcond=None)[0]

    def residual(theta):
        return np.clip(design @ theta, *p_range) - p

    theta = least_squares(residual, start).x
    return {"form": form, **coefficients(form, theta), "p_min": p_range[0], "p_max": p_range[1]}


def regret(cell: dict, rate: float) -> float:
    """Nats lost in this cell by training at `rate` instead of its best swept rate."""
    rates, means = cell["curve"]["rates"], cell["curve"]["mean_val_loss"]
    return float(np.interp(min(max(rate, rates[0]), rates[-1]), rates, means) - min(means))


def best_static(cells: list[dict]) -> float:
    """The one swept rate of least total regret over the cells."""
    rates = cells[0]["curve"]["rates"]
    return min(rates, key=lambda r: (sum(regret(c, r) for c in cells), r))


def one_variable(cells: list[dict], p_range) -> dict:
    return fit_law([c["tokens_per_parameter"] for c in cells], [c["p_star"] for c in cells], p_range)


def _summary(predicted: list[float], cells: list[dict]) -> dict:
    errors = [p - c["p_star"] for p, c in zip(predicted, cells)]
    regrets = [regret(c, p) for p, c in zip(predicted, cells)]
    return {"p_star_mae": float(np.mean(np.abs(errors))), "p_star_rmse": float(np.sqrt(np.mean(np.square(errors)))),
            "regret_mean": float(np.mean(regrets)), "regret_max": float(np.max(regrets)),
            "predicted": [float(p) for p in predicted], "regret": regrets}


def held_out(cells: list[dict], form: str, p_range) -> dict:
    """Leave-one-cell-out error of the law and of both baselines."""
    law, static, probe = [], [], []
    for i, cell in enumerate(cells):
        rest = cells[:i] + cells[i + 1:]
        law.append(pressure_rate(fit_pressure(rest, form, p_range), cell["x"], cell["y"]))
        static.append(best_static(rest))
        probe.append(min(max(predict(one_variable(rest, p_range), cell["tokens_per_parameter"]), p_range[0]), p_range[1]))
    return {"law": _summary(law, cells), "best_static": _summary(static, cells),
            "one_variable_law": _summary(probe, cells), "method": "leave-one-cell-out"}


def fit_with_error(cells: list[dict], form: str, p_range: tuple[float, float]) -> dict:
    """The law on every cell, its in-sample residuals, and its held-out error beside the baselines."""
    if form not in PRESSURE_FORMS:
        raise ValueError(f"unknown form {form!r}")
    if len(cells) < MIN_CELLS[form]:
        raise ValueError(f"a {form} law needs at least {MIN_CELLS[form]} cells, got {len(cells)}")
    law = fit_pressure(cells, form, p_range)
    fitted = [pressure_rate(law, c["x"], c["y"]) for c in cells]
    return law | {"formula": pressure_formula(law), "cells": len(cells),
                  "x_range": [min(c["x"] for c in cells), max(c["x"] for c in cells)],
                  "y_range": [min(c["y"] for c in cells), max(c["y"] for c in cells)],
                  "in_sample": _summary(fitted, cells), "held_out": held_out(cells, form, p_range),
                  "best_static_rate": best_static(cells)}
