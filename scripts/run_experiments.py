"""The seed's entry point: `--mode screen_static|confirm_static|locked_stream` plus its flags.

Every flag has the meaning it has in `python -m dropout_decay.study`; this script only maps
the mode to a stage, so the user's existing commands keep working.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from dropout_decay.cli.main import run_command  # noqa: E402
from dropout_decay.cli.parsing import Parser, add_run_flags  # noqa: E402
from dropout_decay.cli.stages import launch  # noqa: E402
from dropout_decay.cli.flags import add_stage_flags  # noqa: E402

MODES = {"screen_static": "screen", "confirm_static": "confirm", "locked_stream": "stream"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    mode = Parser(add_help=False)
    mode.add_argument("--mode")  # checked by the full parser below, inside run_command
    stage = MODES.get(mode.parse_known_args(argv)[0].mode)
    ap = Parser(prog="run_experiments.py", description=__doc__.splitlines()[0])
    ap.stage = stage  # the mode's stage: its flags only, the others refused by name
    ap.add_argument("--mode", required=True, choices=sorted(MODES), help="which stage to run")
    add_stage_flags(ap, stage)
    add_run_flags(ap)

    def body() -> int:
        args = ap.parse_args(argv)
        return launch(MODES[args.mode], args, ["scripts/run_experiments.py", *argv])

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
