"""Atomic file writes: a killed process never leaves a half-written file under the final name."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import UsageError



def check_output_dir(path: Path, flag: str = "--output-dir") -> None:
    """One line, before anything is trained or stored, when `path` cannot become a run folder: it
    is a file, it lies inside a file, or its nearest existing folder cannot be written. Creates
    nothing, so a refused command leaves no empty folder behind."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a folder; name a folder (new or a run's)")
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UsageError(f"{flag} {path} lies inside {existing}, which is a file; name a folder elsewhere")
    try:  # a file made and removed at once: permissions, read-only mounts and root all answer truly
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write in {existing} ({e.strerror}); choose another folder") from None


@functools.cache
def _umask() -> int:
    """The process umask, read once (reading it means setting it, so never at import)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "w") -> None:
    """Call `write(f)` on a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        text_args = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
        with os.fdopen(fd, mode, **text_args) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artefacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Stable JSON (sorted keys, 2-space indent, trailing newline) so exports compare byte for byte."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
