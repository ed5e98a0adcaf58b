"""Stage files under studies/: keys are flag names with underscores, plus `stage`."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from ..common import STAGE_NAMES, Stage, UsageError
from ..training import TrainConfig
from .settings import STUDIES_DIR, Settings


# Settings that only one kind of stage reads; every other setting applies to every stage.
STATIC_SWEEPS, BY_LIMIT = (Stage.SCREEN, Stage.CONFIRM), (Stage.SCREEN, Stage.CONFIRM, Stage.PROBE, Stage.MAP)
STAGE_ONLY = {
    "steps": STATIC_SWEEPS, "token_limits": BY_LIMIT, "plateau_delta": BY_LIMIT, "passes": (Stage.PROBE, Stage.MAP),
    "max_tokens_seen": (Stage.MAP,),
    **dict.fromkeys(("stream_token_caps", "decays", "stage_steps", "lock_from", "fixed_pool_controls",
                     "matched_statics", "claims"), (Stage.STREAM,)),
}


def applies(key: str, stage: str | None) -> bool:
    """Does a setting (or flag, with dashes) mean anything to this stage? (None: to some stage.)"""
    return stage is None or stage in STAGE_ONLY.get(key.lstrip("-").replace("-", "_"), (stage,))


def refuse_foreign(keys, stage: str, where: str) -> None:
    """One line for a setting the stage would silently ignore, naming the stages it belongs to."""
    for key in sorted(keys):
        if not applies(key, stage):
            raise UsageError(f"{where}: `{key}` does not apply to a {stage} (it is a setting of "
                             f"{' and '.join(STAGE_ONLY[key])}); remove it")


def file_keys() -> set[str]:
    """Keys a stage file may hold: every flag's name with underscores, and `stage`."""
    return ({f.name for f in fields(Settings)} - {"train", "calibrations"}) | {f.name for f in fields(TrainConfig)}


def read_toml(name: str) -> tuple[Path, dict]:
    """`studies/NAME.toml` or a path, parsed; one line for a missing or malformed file."""
    path = Path(name)
    if not path.is_file():
        path = STUDIES_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in STUDIES_DIR.glob("*.toml")))
        raise UsageError(f"no study file {name!r} (known: {known})")
    try:
        return path, tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: {e}") from None


def load_study_file(name: str) -> dict:
    """A stage file. Keys are flag names with underscores, plus `stage`."""
    path, data = read_toml(name)
    if "workflow" in data or Stage.SCREEN in data:
        raise UsageError(f"{path} is a workflow; run it with `workflow {name}`")
    unknown = set(data) - file_keys()
    if unknown:
        raise UsageError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    if data.get("stage") not in STAGE_NAMES:
        raise UsageError(f"{path}: 'stage' must be one of {', '.join(STAGE_NAMES)}")
    refuse_foreign(set(data) - {"stage"}, data["stage"], str(path))
    return data
