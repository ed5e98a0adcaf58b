"""Optuna's private names live in sweep/optuna_internals.py alone, and each one is still there."""

import ast
from pathlib import Path

from dropout_decay.sweep.optuna_internals import missing

PACKAGE = Path(__file__).resolve().parents[2] / "dropout_decay"
PRIVATE = {"_storage", "_trial_id", "_study_id", "_backend", "_all_grids", "_param_names", "_same_search_space"}


def private_uses(path: Path) -> list[str]:
    return [f"{path.name}:{n.lineno} .{n.attr}" for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Attribute) and n.attr in PRIVATE]


def test_every_private_name_this_package_relies_on_exists_in_the_installed_optuna():
    import optuna

    gone = missing()
    assert not gone, (f"optuna {optuna.__version__} lacks {', '.join(gone)}: sweep/optuna_internals.py says what "
                      "each is for; find the public replacement before widening the pin in pyproject.toml")


def test_no_module_but_the_adapter_touches_optunas_private_names():
    uses = {str(p.relative_to(PACKAGE)): u for p in PACKAGE.rglob("*.py")
            if p.name != "optuna_internals.py" and (u := private_uses(p))}
    assert uses == {}


def test_the_check_sees_a_private_use(tmp_path):
    probe = tmp_path / "m.py"
    probe.write_text("def f(study):\n    return study._storage\n")
    assert private_uses(probe) == ["m.py:2 ._storage"]
