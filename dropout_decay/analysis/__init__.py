"""Answers from results, as pure functions of tables: the static optimum and its selection, the
probe's optima, paired comparisons and claims. May import: model (the law), common.

The names below are what the subpackage offers the others, which import them from here."""

from .backtest import predict_cells, summary as backtest_summary
from .comparison import by_replicate, claims, compare_arms
from .interaction import fixed_pool_interaction
from .primary import judge
from .pressure_law import fit_with_error
from .pressure_map import analyse_map, describe_map, map_cells, pass_counts
from .probe import analyse_probe
from .selection import select_models
from .trajectory import compare_trajectory

__all__ = [
    "analyse_map",
    "analyse_probe",
    "backtest_summary",
    "by_replicate",
    "claims",
    "compare_arms",
    "compare_trajectory",
    "describe_map",
    "fit_with_error",
    "fixed_pool_interaction",
    "judge",
    "map_cells",
    "pass_counts",
    "predict_cells",
    "select_models",
]
