"""What to run: every setting and its checks, stage and workflow files, declared claims, the
handoffs between stages and scale models. Knows nothing of Optuna (an import-linter contract
forbids it), so a design can be read, checked and printed without a storage. May import:
training and below.

The names below are what the subpackage offers the others, which import them from here."""

from .checks import check
from .declared import parse_claim
from .handoff import best_candidate, lock_model, lock_record, lowest_loss
from .plan import ORDER, WorkflowFile, derived_stream_arms, load_workflow
from .scale import side_by_side
from .seed_regimes import pressure_side_by_side
from .settings import STUDIES_DIR, Settings, mean_rates, resolve
from .studyfiles import STAGE_ONLY, applies, load_study_file

__all__ = [
    "ORDER",
    "STAGE_ONLY",
    "STUDIES_DIR",
    "Settings",
    "WorkflowFile",
    "applies",
    "best_candidate",
    "check",
    "derived_stream_arms",
    "load_study_file",
    "load_workflow",
    "lock_model",
    "lock_record",
    "lowest_loss",
    "mean_rates",
    "parse_claim",
    "pressure_side_by_side",
    "resolve",
    "side_by_side",
]
