"""`dropout-decay` (or `python -m dropout_decay.study`): run, resume, inspect and export stage studies.

    screen | confirm | probe | stream | map [FLAGS]   run a stage (rerunning the same command resumes it)
    run NAME [FLAGS]                    run the stage file studies/NAME.toml, flags override it
    workflow CONFIG [--dry-run]         screen -> select -> confirm -> (probe) -> lock -> stream, in one
                                        resumable folder with index.html and workflow.json
    resume RUN_DIR                      continue a stopped run
    worker --storage URL --study NAME   join a study from another process or machine and train
                                        its unvisited points until the grid is done
    status RUN_DIR                      what is done / running / stale / failed / left, with an ETA
    export RUN_DIR                      rebuild every artefact from the storage alone
    backtest FIT_RUN... --predict RUN... --output-dir DIR
                                        fit the pressure law on stored studies, predict others' optima
    replay RUN_DIR [--seeds/--arms/...] re-run (part of) a stored grid into a new study; report
                                        per point the change in val loss and bitwise identity
    dashboard [RUN_DIR] [--port 8080]   optuna-dashboard on 127.0.0.1, each study with its verdict note
    cache [--corpus ...]                build (or check) the token cache only

RUN_DIR may be replaced by `--storage URL --study NAME` for any Optuna RDB storage.
Bad input prints one line and exits 2; a run in which points failed writes what finished, names
each kind of failure and exits 1; Ctrl-C marks the running point failed ('interrupted'), writes
the artefacts and exits 130; the next run resumes it.
"""

from __future__ import annotations

import sys
from typing import Callable

from ..common import STAGE_NAMES, Stage, UsageError, deferred, exit_with, listen, message, release, shield
from .parsing import prog, stage_parser
from .stages import launch, run_file

COMMANDS = (*STAGE_NAMES, "run", "workflow", "backtest", "resume", "worker", "status", "export", "replay", "dashboard", "cache")


def dispatch(command: str, rest: list[str], argv: list[str]) -> int:
    if command in STAGE_NAMES:
        return launch(Stage(command), stage_parser(command, f"{prog()} {command}").parse_args(rest), argv)
    if command == "run":
        return run_file(rest, argv)
    if command == "workflow":
        from .workflow import workflow_command

        return workflow_command(rest, argv)
    if command == "backtest":
        from .backtest import backtest_command

        return backtest_command(rest)
    from . import tools

    if command in ("resume", "worker"):
        return tools.join(command, rest)
    if command == "replay":
        return tools.replay(rest, argv)
    if command == "dashboard":
        return tools.dashboard(rest)
    if command == "status":
        return tools.status(rest)
    if command == "export":
        return tools.export_command(rest)
    if command == "cache":
        return tools.cache_command(rest)
    raise UsageError(f"unknown command {command!r} (choose from {', '.join(COMMANDS)})")


def quiet_libraries() -> None:
    """We say what failed and why ourselves; Optuna's own logging and warnings would repeat it."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def run_command(body: Callable[[], int]) -> int:
    """Run one command: bad input is one line and exit 2, Ctrl-C one line and exit 130."""
    listen()
    try:
        with deferred():  # a Ctrl-C during these imports is raised once they are done
            import torch  # noqa: F401  (every command that trains or exports needs it)

            quiet_libraries()
        return body()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        shield()
        print(message(), file=sys.stderr)
        return 130
    finally:
        release()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv[0] == "--version":
        from .. import __version__

        print(f"dropout-decay {__version__}")
        return 0
    return run_command(lambda: dispatch(argv[0], argv[1:], [prog(), *argv]))


def console() -> None:
    """The `dropout-decay` console script: the same commands as `python -m dropout_decay.study`."""
    exit_with(main())
