"""The nanochat-derived GPT, its dropout masks, and the schedules that set the dropout rate while
it trains (with the law p*(D) a calibrated schedule follows). May import: common.

The names below are what the subpackage offers the others, which import them from here."""

from .arms import Arm, ArmKind, base_name, is_twin, static_rate, twin_name
from .gpt import GPT, ModelSpec, parse_model_spec
from .law import fit_form, fit_law, formula, predict
from .pressure import (
    PRESSURE_FORMS,
    pressure_coordinates,
    pressure_formula,
    pressure_rate,
    read_pressure_law,
    regime,
    regime_differences,
    regime_of,
)
from .masks import DEFAULT_MASKS, LEGACY_MASKS, MASK_FORMS, Drawn, describe_masks, draw_all, keep_everything
from .schedules import Schedule, check_rate, is_calibrated, is_pressure, parse_decays, read_calibration, reads_law, static

__all__ = [
    "Arm",
    "ArmKind",
    "DEFAULT_MASKS",
    "Drawn",
    "GPT",
    "LEGACY_MASKS",
    "MASK_FORMS",
    "ModelSpec",
    "PRESSURE_FORMS",
    "Schedule",
    "base_name",
    "check_rate",
    "describe_masks",
    "draw_all",
    "fit_form",
    "fit_law",
    "formula",
    "is_calibrated",
    "is_pressure",
    "is_twin",
    "keep_everything",
    "parse_decays",
    "parse_model_spec",
    "predict",
    "pressure_coordinates",
    "pressure_formula",
    "pressure_rate",
    "read_calibration",
    "read_pressure_law",
    "reads_law",
    "regime",
    "regime_differences",
    "regime_of",
    "static",
    "static_rate",
    "twin_name",
]
