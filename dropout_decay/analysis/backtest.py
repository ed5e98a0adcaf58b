"""A backtest: fit the pressure law on some stored studies' cells, predict the others' optima.

The protocol of the seed's later project (published_regimes.md): a new formula is scored on
saved results before anything new is trained. Each predicted cell's row holds the observed p*
(on that study's validation loss), the law's p*, and the regret of training at the law's rate
instead of the cell's best (linear between the rates that study swept), beside the regret of
the fit studies' best single static rate. A study from another regime is refused by the
caller unless allowed; its rows then name what differs.
"""

from __future__ import annotations

import numpy as np

from ..model import pressure_rate
from .pressure_law import best_static, fit_with_error, regret


def predict_cells(fit_cells: list[dict], predict: list[tuple[str, list[dict], str]], form: str,
             p_range: tuple[float, float]) -> tuple[dict, list[dict]]:
    """The law fitted on `fit_cells`, and one row per cell of each (study, cells, other-regime
    note) in `predict`."""
    law = fit_with_error(fit_cells, form, p_range)
    static = best_static(fit_cells)
    rows = []
    for study, cells, other in predict:
        for c in cells:
            predicted = pressure_rate(law, c["x"], c["y"])
            rows.append({"study": study, "model": c["model"], "unique_tokens": c["unique_tokens"], "passes": c["passes"],
                         "x": c["x"], "y": c["y"], "observed_p_star": c["p_star"], "predicted_p_star": predicted,
                         "error": predicted - c["p_star"], "regret": regret(c, predicted),
                         "best_static_rate": static, "best_static_regret": regret(c, static),
                         "other_regime": other})
    return law, rows


def summary(rows: list[dict]) -> dict:
    """Mean |error| and regret over the predicted cells, law against the fit's best static rate."""
    if not rows:
        return {"cells": 0}
    return {"cells": len(rows), "p_star_mae": float(np.mean([abs(r["error"]) for r in rows])),
            "regret_mean": float(np.mean([r["regret"] for r in rows])),
            "best_static_regret_mean": float(np.mean([r["best_static_regret"] for r in rows])),
            "other_regime_cells": sum(bool(r["other_regime"]) for r in rows)}
