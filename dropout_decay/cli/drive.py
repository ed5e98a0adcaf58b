"""Where runs live, and training a study's points here: what every command that trains ends in."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..common.interrupts import doing, shield

RUNS_DIR = Path("runs")


def new_run_dir(prefix: str) -> Path:
    """runs/<prefix>-<time>, with a suffix when a run of the same second already has it."""
    base = RUNS_DIR / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def drive(study, s, cache, device: str, out: Path, threads: int | None = None, root: Path | None = None) -> int:
    """Train the study's points here until none is left, then write its artefacts into `out`.
    `root` is the run folder holding plotly.js and the artifact store (default: `out`)."""
    from ..sweep import cpu
    from ..report.artefacts import export
    from ..common.console import log
    from ..sweep.objective import PointRunner
    from ..sweep.recovery import fail_own_running
    from ..sweep.runner import describe, work

    runner = PointRunner(s, cache, device, on_start=lambda p: log(f"  training {describe(p)}"),
                         threads=lambda: cpu.share(threads), artifacts=root or out)
    cpu.keep_freed_memory()
    try:
        doing("training")
        status = work(study, runner)
    except KeyboardInterrupt:
        shield()  # a second Ctrl-C must not tear what follows
        fail_own_running(study, "interrupted")
        export(study, out, root)
        log(f"interrupted: the running point is marked failed ('interrupted'); artefacts in {out}; "
            "rerun the same command to resume")
        return 130
    doing("exporting")
    written = export(study, out, root)
    answer = json.loads(written["export.json"].read_text())["answer"]
    log(f"done: {status.complete}/{status.size} complete, {status.failed} failed; wrote {len(written)} files in {out}")
    log(f"answer: {answer}\nreport: {out / 'report.html'}")
    return 0
