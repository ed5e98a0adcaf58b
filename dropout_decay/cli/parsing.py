"""The command line's parsers: one-line usage errors, and the flags every run shares."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..common import UsageError


def prog() -> str:
    """How the user called us, for usage lines and the command recorded with every study."""
    return "dropout-decay" if Path(sys.argv[0]).name == "dropout-decay" else "python -m dropout_decay.study"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other refusal."""

    stage: str | None = None  # a stage's parser: an unknown flag may be another stage's

    def error(self, message):
        if self.stage and message.startswith("unrecognized arguments"):
            from ..design import STAGE_ONLY

            for word in message.split(":", 1)[1].split():
                key = word.split("=")[0].lstrip("-").replace("-", "_")
                if word.startswith("--") and key in STAGE_ONLY:
                    raise UsageError(f"{self.prog}: {word.split('=')[0]} does not apply to a {self.stage} "
                                     f"(it is a flag of {' and '.join(STAGE_ONLY[key])})")
        raise UsageError(f"{self.prog}: {message}")


def add_run_flags(ap: argparse.ArgumentParser) -> None:
    from ..sweep import HEARTBEAT_S

    g = ap.add_argument_group("run")
    g.add_argument("--output-dir", help="run folder (default: the previous run of the same experiment, else runs/<stage>-<time>)")
    g.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<output-dir>/study.db); "
                                     "postgresql://... lets several machines work one grid")
    g.add_argument("--study-name", help="study name (default <stage>-<fingerprint>)")
    g.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, help=f"seconds between worker heartbeats (default {HEARTBEAT_S})")
    add_machine_flags(g, compile_default="auto")
    g.add_argument("--retry-failed", action="store_true", help="also re-queue points that failed deterministically (e.g. diverged)")
    g.add_argument("--dry-run", action="store_true", help="print the grid size and a time estimate, run nothing")


def add_machine_flags(g, compile_default: str | None = None, jobs: bool = True) -> None:
    """How this machine trains, never what: every command that trains takes them. A stage's
    --compile fills its setting (default auto); on workflow, worker and replay it overrides
    the file's or the stored study's. A worker is one process (it takes no --jobs)."""
    from ..training import COMPILE_MODES
    from .jobs import parse_jobs

    if jobs:
        default = os.environ.get("DROPOUT_DECAY_JOBS", "auto")
        g.add_argument("--jobs", type=parse_jobs, default=parse_jobs(default), metavar="N",
                       help="local processes training the grid, each on its share of the cores: auto adds them on a "
                            "CPU once the first point shows the grid is long enough to pay; 1 for one (default "
                            f"{default}{', from DROPOUT_DECAY_JOBS' if 'DROPOUT_DECAY_JOBS' in os.environ else ''})")

    g.add_argument("--threads", type=int, help="torch CPU threads (default: the cores shared among this machine's workers)")
    g.add_argument("--compile", choices=COMPILE_MODES, default=compile_default,
                   help="compiled training steps: auto (default) compiles where a point's first steps say it pays, "
                        "never on MPS; on always; off never. The same numbers to rounding, not part of a study's identity"
                        if compile_default else "override the compile setting of the file or the stored study: auto, on or off")


def stage_parser(stage: str, prog: str) -> Parser:
    from .flags import add_stage_flags

    ap = Parser(prog=prog, description=f"Run the {stage} stage as one Optuna study.")
    ap.stage = stage
    add_stage_flags(ap, stage)
    add_run_flags(ap)
    return ap


MAX_HEARTBEAT_S = 86_400  # a worker silent for two days is not one
MAX_THREADS = 1024  # more than any CPU has cores


def check_run_flags(args: argparse.Namespace) -> None:
    if not 0 < args.heartbeat <= MAX_HEARTBEAT_S:
        raise UsageError(f"--heartbeat must be 1..{MAX_HEARTBEAT_S:,} seconds, got {args.heartbeat:,}")
    if args.threads is not None and not 0 < args.threads <= MAX_THREADS:
        raise UsageError(f"--threads must be 1..{MAX_THREADS}, got {args.threads:,}")
