"""Train one grid point: a fresh model through its segments on the chosen device (the MPS gate).
May import: model, data, common.

The names below are what the subpackage offers the others, which import them from here."""

from .compiled import COMPILE_MODES, CompileChoice, compile_stats, compiled_loss, compiling_pays
from .device import DeviceChoice, select_device
from .memory import available_bytes, eval_bytes, gib, step_bytes
from .trainer import (
    Hooks,
    PointRun,
    Segment,
    TrainConfig,
    TrainingDiverged,
    evaluate,
    make_optimizer,
    optimizer_step,
    train,
)

__all__ = [
    "COMPILE_MODES",
    "CompileChoice",
    "DeviceChoice",
    "Hooks",
    "PointRun",
    "Segment",
    "TrainConfig",
    "TrainingDiverged",
    "available_bytes",
    "compile_stats",
    "compiled_loss",
    "compiling_pays",
    "eval_bytes",
    "evaluate",
    "gib",
    "make_optimizer",
    "optimizer_step",
    "select_device",
    "step_bytes",
    "train",
]
