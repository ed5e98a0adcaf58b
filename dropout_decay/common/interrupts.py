"""Ctrl-C at any moment: one accurate line, exit 130, and a storage left consistent.

The process says what it is doing (`doing`); when a KeyboardInterrupt reaches `main()`, the
line for that phase is printed. Cleanup that must finish (recording why a point failed,
writing the artefacts) runs after `shield()`, which ignores any further Ctrl-C until the
process ends, so a second Ctrl-C cannot lose a failure reason or tear a write.

Python raises a Ctrl-C's KeyboardInterrupt wherever the main thread happens to be, and where
that is a garbage-collector callback (SQLAlchemy has several), it is printed as "Exception
ignored" and lost: the run went on to the end. `listen()` remembers every Ctrl-C, keeps such a
lost one quiet, and `check()` (before each point and each training step) raises it again.
`DROPOUT_DECAY_PAUSE_AT=<phase>` makes the process wait when that phase begins (fault injection).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import contextmanager
from typing import NoReturn

MESSAGES = {
    "starting": "interrupted while starting: nothing was written",
    "caching": "interrupted while building the token cache: it is left unusable and is rebuilt on the next run",
    "creating": "interrupted while creating the study: rerun the same command to finish creating it",
    "ready": "interrupted before training began: rerun the same command to start",
    "training": "interrupted: the running point is marked failed ('interrupted'); rerun the same command to resume",
    "exporting": "interrupted while writing artefacts: the previous set is intact; `export RUN_DIR` writes them again",
}
_now = ["starting"]
_requested = [False]
_before: list = []  # SIGINT's handler and the unraisable hook before listen(), put back by release()


def _interrupt(signum, frame) -> None:
    _requested[0] = True
    raise KeyboardInterrupt


def _unraisable(info) -> None:
    if not isinstance(info.exc_value, KeyboardInterrupt):  # a lost Ctrl-C is remembered: check() raises it
        sys.__unraisablehook__(info)


def listen() -> None:
    """Take over Ctrl-C for one command (unless the process was started with it ignored)."""
    _requested[0] = False
    _before.append((signal.getsignal(signal.SIGINT), sys.unraisablehook))
    if _before[-1][0] is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
    sys.unraisablehook = _unraisable


def _remember(signum, frame) -> None:
    _requested[0] = True


@contextmanager
def deferred():
    """Hold a Ctrl-C until the block ends, then raise it: torch's native import aborts the
    process (SIGABRT) when a KeyboardInterrupt is raised inside it."""
    if signal.getsignal(signal.SIGINT) is not _interrupt:
        yield
        return
    signal.signal(signal.SIGINT, _remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, _interrupt)
    check()


def check() -> None:
    """Raise the Ctrl-C that came while Python could not raise it."""
    if _requested[0]:
        raise KeyboardInterrupt


def doing(phase: str) -> None:
    _now[0] = phase
    if os.environ.get("DROPOUT_DECAY_PAUSE_AT") == phase:
        print(f"paused at {phase}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("DROPOUT_DECAY_PAUSE_S", "60")))


def message() -> str:
    return MESSAGES[_now[0]]


def shield() -> None:
    """Ignore Ctrl-C from here on: what follows must finish."""
    _requested[0] = False
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def exit_with(code: int) -> NoReturn:
    """End the process with `code`; after a Ctrl-C (130), at once. A KeyboardInterrupt raised
    inside code that exec() or eval() runs from a string (dataclasses and numpy.f2py do so while
    scipy is imported) is marked unhandled even when main() catches it, and CPython then ends
    the process by SIGINT (status -2) once it has finalised. By then the command has written
    what it must."""
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


def release() -> None:
    """Give Ctrl-C back as it was before listen() (main() may return inside a longer-lived
    process, such as a test run; processes started meanwhile would inherit an ignored signal)."""
    if _before:
        handler, sys.unraisablehook = _before.pop()
        signal.signal(signal.SIGINT, handler)
    _now[0] = "starting"
    _requested[0] = False
