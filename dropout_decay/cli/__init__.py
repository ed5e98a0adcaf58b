"""The command line on top of everything: stages, workflow, the tools on existing studies, the dry
run. Imports of the layers below may be lazy here (start-up time), and only here.

What it offers the entry points (study.py, the console script, scripts/run_experiments.py)."""

from .main import console

__all__ = ["console"]
