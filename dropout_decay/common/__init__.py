"""Small tools that know nothing of the experiment: one-line errors, atomic files, console lines,
Ctrl-C handling, SVG charts. Imports nothing from the package.

The names below are what the subpackage offers the others, which import them from here."""

from .console import Progress, bar, clock, log
from .errors import UsageError
from .files import atomic_write, check_output_dir, sha256_file, write_json, write_text
from .interrupts import check, deferred, doing, exit_with, listen, message, release, shield
from .kinds import check_kinds
from .stages import STAGE_NAMES, Stage, WORKFLOW_ORDER, stage_of
from .svg import COLOURS, line_chart

__all__ = [
    "COLOURS",
    "Progress",
    "STAGE_NAMES",
    "Stage",
    "UsageError",
    "WORKFLOW_ORDER",
    "atomic_write",
    "bar",
    "check",
    "check_kinds",
    "check_output_dir",
    "clock",
    "deferred",
    "doing",
    "exit_with",
    "line_chart",
    "listen",
    "log",
    "message",
    "release",
    "sha256_file",
    "shield",
    "stage_of",
    "write_json",
    "write_text",
]
