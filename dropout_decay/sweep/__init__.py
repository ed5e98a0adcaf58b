"""How Optuna runs a design: the grid and its sampler, storages, workers, recovery, the
objective, provenance, replay and time estimates; Optuna's private names in optuna_internals.py
alone. May import: design and below.

The names below are what the subpackage offers the others, which import them from here."""

from .attachments import ARTIFACTS, attach_study
from .estimate import (
    check_fits,
    describe_estimate,
    grid_seconds,
    micro_batches,
    peak_memory,
    per_step_text,
    step_seconds,
)
from .grid import first_complete, grid_status
from .objective import PointRunner
from .optuna_internals import storage_of
from .provenance import build_config, data_identity, load_config
from .recovery import fail_own_running, requeue_failed
from .replay import replay_name, replay_rows, replay_settings, replay_summary
from .runner import describe_point, failure_lines, find_previous_run, print_status, work
from .storage import HEARTBEAT_S, check_url, checkpoint, open_storage, open_study, sqlite_url, study_names_read_only

__all__ = [
    "ARTIFACTS",
    "HEARTBEAT_S",
    "PointRunner",
    "attach_study",
    "build_config",
    "check_fits",
    "check_url",
    "checkpoint",
    "data_identity",
    "describe_estimate",
    "describe_point",
    "fail_own_running",
    "failure_lines",
    "find_previous_run",
    "first_complete",
    "grid_seconds",
    "grid_status",
    "load_config",
    "micro_batches",
    "open_storage",
    "open_study",
    "peak_memory",
    "per_step_text",
    "print_status",
    "replay_name",
    "replay_rows",
    "replay_settings",
    "replay_summary",
    "requeue_failed",
    "sqlite_url",
    "step_seconds",
    "storage_of",
    "study_names_read_only",
    "work",
]
