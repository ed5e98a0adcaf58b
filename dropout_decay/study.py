"""`python -m dropout_decay.study`: the command line. What it offers is in cli/main.py."""

from .cli.main import main
from .common.interrupts import exit_with

if __name__ == "__main__":
    exit_with(main())
