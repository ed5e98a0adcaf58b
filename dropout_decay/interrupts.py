"""Ctrl-C at any moment: one accurate line, exit 130, and a storage left consistent.

The process says what it is doing (`doing`); when a KeyboardInterrupt reaches `main()`, the
line for that phase is printed. Cleanup that must finish (recording why a point failed,
writing the artefacts) runs after `shield()`, which ignores any further Ctrl-C until the
process ends, so a second Ctrl-C cannot lose a failure reason or tear a write.
`DROPOUT_DECAY_PAUSE_AT=<phase>` makes the process wait when that phase begins (fault injection).
"""

from __future__ import annotations

import os
import signal
import sys
import time

MESSAGES = {
    "starting": "interrupted while starting: nothing was written",
    "caching": "interrupted while building the token cache: it is left unusable and is rebuilt on the next run",
    "creating": "interrupted while creating the study: rerun the same command to finish creating it",
    "ready": "interrupted before training began: rerun the same command to start",
    "training": "interrupted: the running point is marked failed ('interrupted'); rerun the same command to resume",
    "exporting": "interrupted while writing artefacts: the previous set is intact; `export RUN_DIR` writes them again",
}
_now = ["starting"]
_saved: list = []  # SIGINT's handler before the first shield(), restored by unshield()


def doing(phase: str) -> None:
    _now[0] = phase
    if os.environ.get("DROPOUT_DECAY_PAUSE_AT") == phase:
        print(f"paused at {phase}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("DROPOUT_DECAY_PAUSE_S", "60")))


def message() -> str:
    return MESSAGES[_now[0]]


def shield() -> None:
    """Ignore Ctrl-C from here on: what follows must finish."""
    if not _saved:
        _saved.append(signal.getsignal(signal.SIGINT))
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def unshield() -> None:
    """Give Ctrl-C back (when main() returns inside a longer-lived process, such as a test run;
    processes started meanwhile would otherwise inherit the ignored signal)."""
    if _saved:
        signal.signal(signal.SIGINT, _saved.pop())
    _now[0] = "starting"
