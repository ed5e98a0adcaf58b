"""Stage files under studies/: keys are flag names with underscores, plus `stage`."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from ..common.errors import UsageError
from ..training.train import TrainConfig
from .settings import STAGES, STUDIES_DIR, Settings


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
    if "workflow" in data or "screen" in data:
        raise UsageError(f"{path} is a workflow; run it with `workflow {name}`")
    unknown = set(data) - file_keys()
    if unknown:
        raise UsageError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    if data.get("stage") not in STAGES:
        raise UsageError(f"{path}: 'stage' must be one of {', '.join(STAGES)}")
    return data
