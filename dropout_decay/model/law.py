"""The law p*(D): how the best static dropout rate falls as the data grows.

D is in tokens per parameter, so a law measured on one model can be tried on another. Two
two-parameter forms are fitted to the per-cap optima of a probe (probe.py):

* `log-linear`: p*(D) = max(0, a − b·ln D)  (falls by b per e-fold of data, reaches 0);
* `power`:      p*(D) = a·D^(−b)            (falls by a constant factor per e-fold, never 0).

The form is chosen by leave-one-cap-out prediction error: each cap's optimum is predicted by
the form fitted to the other caps, and the form with the smaller mean squared error wins (a
stated criterion, not the in-sample fit, which the more flexible form would always win).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import least_squares

FORMS = ("log-linear", "power")
UNIT = "tokens per parameter"


def predict(law: dict, d: float) -> float:
    a, b = law["params"]["a"], law["params"]["b"]
    if law["form"] == "log-linear":
        return max(0.0, a - b * math.log(d))
    if law["form"] == "power":
        return a * d ** (-b)
    raise ValueError(f"unknown law form {law['form']!r}")


def formula(law: dict) -> str:
    """The law in words, e.g. 'p*(D) = max(0, 0.312 − 0.084·ln D)'."""
    a, b = law["params"]["a"], law["params"]["b"]
    sign = "−" if b >= 0 else "+"  # a best rate that rises with data is shown as such, not as "− -b"
    if law["form"] == "log-linear":
        return f"p*(D) = max(0, {a:.3g} {sign} {abs(b):.3g}·ln D)"
    return f"p*(D) = {a:.3g}·D^({'−' if b >= 0 else ''}{abs(b):.3g})"


def fit_form(form: str, d: np.ndarray, p: np.ndarray) -> dict:
    """Least-squares parameters of one form through the points (d, p)."""
    x = np.log(d)
    if form == "log-linear":
        slope, intercept = np.polyfit(x, p, 1) if np.ptp(x) > 0 else (0.0, float(np.mean(p)))
        start = [intercept, -slope]

        def residual(theta):
            return np.maximum(0.0, theta[0] - theta[1] * x) - p
    else:
        positive = p > 0
        if positive.sum() >= 2 and np.ptp(x[positive]) > 0:
            slope, intercept = np.polyfit(x[positive], np.log(p[positive]), 1)
            start = [math.exp(intercept), -slope]
        else:
            start = [max(float(np.mean(p)), 1e-3), 0.0]

        def residual(theta):
            return theta[0] * np.exp(-theta[1] * x) - p
    bounds = ([-np.inf, -np.inf], [np.inf, np.inf]) if form == "log-linear" else ([0.0, -np.inf], [np.inf, np.inf])
    start = np.clip(start, [b + 1e-12 for b in bounds[0]], bounds[1])
    sol = least_squares(residual, start, bounds=bounds)
    a, b = (float(v) for v in sol.x)
    return {"form": form, "params": {"a": a, "b": b}}


def loo_error(form: str, d: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of predicting each point from a fit to the others."""
    errors = []
    for i in range(d.size):
        rest = np.arange(d.size) != i
        law = fit_form(form, d[rest], p[rest])
        errors.append((predict(law, float(d[i])) - p[i]) ** 2)
    return float(np.mean(errors))


def fit_law(d: list[float], p: list[float], p_range: tuple[float, float]) -> dict:
    """Both forms, their residuals and held-out errors, and the chosen one; `p_range` is the
    range of rates the probe swept (a calibrated schedule never leaves it)."""
    d_arr, p_arr = np.asarray(d, float), np.asarray(p, float)
    candidates = []
    for form in FORMS:
        law = fit_form(form, d_arr, p_arr)
        fitted = [predict(law, float(x)) for x in d_arr]
        candidates.append(law | {"fitted": fitted, "residuals": [float(f - y) for f, y in zip(fitted, p_arr)],
                                 "loo_mse": loo_error(form, d_arr, p_arr)})
    best = min(candidates, key=lambda c: (c["loo_mse"], FORMS.index(c["form"])))
    return {"form": best["form"], "params": best["params"], "unit": UNIT, "p_range": list(p_range),
            "d_range": [float(d_arr.min()), float(d_arr.max())], "criterion": "leave-one-cap-out MSE",
            "candidates": candidates}
