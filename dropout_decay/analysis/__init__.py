"""Answers from results, as pure functions of tables: the static optimum and its selection, the
probe's optima, paired comparisons and claims. May import: model (the law), common.

The names below are what the subpackage offers the others, which import them from here."""

from .comparison import by_replicate, claims, compare_arms
from .interaction import fixed_pool_interaction
from .primary import judge
from .pressure_law import fit_with_error
from .pressure_map import analyse_map, describe_map, map_cells
from .probe import analyse_probe
from .selection import select_models

__all__ = [
    "analyse_map",
    "analyse_probe",
    "by_replicate",
    "describe_map",
    "fit_with_error",
    "map_cells",
    "claims",
    "compare_arms",
    "fixed_pool_interaction",
    "judge",
    "select_models",
]
