"""`python -m dropout_decay.study`: the command line. What it offers is in cli/main.py."""

from .cli import console

if __name__ == "__main__":
    console()
