"""Every artefact of a run, rebuilt from the study storage alone, and written as one set.

The files are rendered in memory, written into `.export-new/` beside them with `export.json`
(the storage state they describe and every file's sha256), then moved into place. A crash
while writing leaves the previous complete set; a crash while moving leaves a complete new set
in `.export-new/` that the next export moves first. Formatting is stable, so exporting a copy
of the storage gives the same bytes. Where a grid point has several COMPLETE trials (a
duplicate at the tail of a multi-worker run), the first one counts: results are keyed on params.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
from pathlib import Path

import optuna
import pandas as pd

from ..common import write_text
from ..sweep import attach_study, checkpoint
from .analysed import Analysis, analyse
from .notes import headline, refresh_note
from .page import ensure_plotly, report_page

PENDING = ".export-new"
LAW_FILES = {"first-order": "pressure_law.json", "interaction": "pressure_law_interaction.json"}


def _clean(obj):
    """NaN/inf -> None so the JSON files are strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _json(obj) -> str:
    """Stable JSON (sorted keys, 2-space indent, trailing newline) so exports compare byte for byte."""
    return json.dumps(_clean(obj), indent=2, sort_keys=True) + "\n"


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(_clean(r), sort_keys=True) + "\n" for r in rows)


def _csv(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def _flat(records: list[dict], drop=()) -> pd.DataFrame:
    """Lists become space-separated strings so the CSV stays one row per record."""
    def cell(v):
        return " ".join("nan" if x is None else str(x) for x in v) if isinstance(v, list) else v

    return pd.DataFrame([{k: cell(v) for k, v in r.items() if k not in drop} for r in records])


def render(a: Analysis, plotly_src: str) -> dict[str, str]:
    """File name -> content of every artefact."""
    files = {"config.json": _json(a.config), "metrics.jsonl": _jsonl(a.metrics), "trace.jsonl": _jsonl(a.trace)}
    if not a.metrics:
        return files
    files["summary.csv"] = _csv(a.summary)
    files["summary.json"] = _json(a.summary.to_dict(orient="records"))
    if a.selection is not None:
        selection = a.selection
        files["model_selection.json"] = _json(selection)
        quad = pd.DataFrame([{f"quad_{k}": v for k, v in r["quadratic_fit"].items() if k != "points"} for r in selection])
        files["model_selection.csv"] = _csv(pd.concat([_flat(selection, drop=("quadratic_fit",)), quad], axis=1))
    if a.probe is not None:
        files["probe.json"] = _json(a.probe)
        files["probe.csv"] = _csv(_flat(a.probe["caps"], drop=("curve", "quadratic", "bootstrap")))
    if a.map is not None:
        files["map.json"] = _json(a.map)
        files["map.csv"] = _csv(_flat(a.map["cells"], drop=("curve", "bootstrap")))
        for form, law in a.map["laws"].items():
            if "reason" not in law:
                files[LAW_FILES[form]] = _json(law)
    if a.comparison is not None:
        files["comparison.json"] = _json(a.comparison)
        if a.comparison:
            files["comparison.csv"] = _csv(_flat(a.comparison))
            files["claims.json"] = _json(a.claims)
            files["claims.csv"] = _csv(_flat(a.claims))
        for name, rows in (("interaction", a.interaction), ("primary", a.primary)):
            if rows:
                files[f"{name}.json"] = _json(rows)
                files[f"{name}.csv"] = _csv(_flat(rows))
        if a.trajectory and a.trajectory["comparison"]:
            files["trajectory.json"] = _json(a.trajectory)
            files["trajectory.csv"] = _csv(_flat(a.trajectory["claims"]))
    if a.replay is not None:
        files["replay.json"] = _json(a.replay)
        files["replay.csv"] = _csv(pd.DataFrame(a.replay))
    files["report.html"] = report_page(a, plotly_src)
    return files


def storage_state(study: optuna.Study) -> str:
    """A digest of every trial's number, state and value: equal digests, same results."""
    h = hashlib.sha256()
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        h.update(f"{t.number}:{t.state.name}:{t.value!r}\n".encode())
    return h.hexdigest()[:16]


def _move_pending(out: Path) -> None:
    """Finish an export whose files were all written but not all moved into place."""
    pending = out / PENDING
    if (pending / "export.json").is_file():
        for f in sorted(pending.iterdir()):
            os.replace(f, out / f.name)
    shutil.rmtree(pending, ignore_errors=True)


def export(study: optuna.Study, out_dir: str | Path, root: str | Path | None = None) -> dict[str, Path]:
    """Write every artefact of the study into `out_dir` as one set (see the module doc) and
    refresh its dashboard note. `root` is the run folder (default `out_dir`; a workflow's
    stages share theirs): it holds the one copy of plotly.js and the artifact store.
    Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _move_pending(out)
    checkpoint(study)
    a = analyse(study)
    root = Path(root) if root else out
    files = render(a, os.path.relpath(ensure_plotly(root), out))
    stamp = {"study": study.study_name, "storage_state": storage_state(study), "answer": headline(a),
             "files": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in sorted(files.items())}}
    pending = out / PENDING  # emptied by _move_pending above
    for name, text in files.items():
        write_text(pending / name, text)
    write_text(pending / "export.json", _json(stamp))  # last: the set is complete
    _move_pending(out)
    refresh_note(study, a.note)
    attach_study(study, root)
    return {name: out / name for name in [*files, "export.json"]}
