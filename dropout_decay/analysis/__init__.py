"""Answers from results, as pure functions of tables: the static optimum and its selection, the
probe's optima, paired comparisons and claims. May import: model (the law), common.

The names below are what the subpackage offers the others, which import them from here."""

from .backtest import backtest, summary as backtest_summary
from .comparison import by_replicate, claims, compare_arms
from .interaction import fixed_pool_interaction
from .primary import judge
from .pressure_law import fit_with_error
from .pressure_map import analyse_map, describe_map, map_cells, pass_counts
from .probe import analyse_probe
from .selection import select_models

__all__ = [
    "analyse_map",
    "backtest",
    "backtest_summary",
    "analyse_probe",
    "by_replicate",
    "describe_map",
    "fit_with_error",
    "map_cells",
    "pass_counts",
    "claims",
    "compare_arms",
    "fixed_pool_interaction",
    "judge",
    "select_models",
]
