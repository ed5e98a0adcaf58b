"""Optuna's private names live in sweep/optuna_internals.py alone, and each one is still there."""

import ast
from pathlib import Path

import optuna
from optuna.samplers import GridSampler

from dropout_decay.sweep.optuna_internals import FastGridSampler, missing

PACKAGE = Path(__file__).resolve().parents[2] / "dropout_decay"
PRIVATE = {"_storage", "_trial_id", "_study_id", "_backend", "_all_grids", "_param_names", "_same_search_space"}


def test_the_fast_grid_sampler_visits_the_stock_samplers_points_in_the_same_order():
    space = {"model": ["a", "b"], "seed": [1, 2, 3], "dropout": [0.0, 0.1, 0.2, 0.3]}
    orders = []
    for sampler in (GridSampler(space, seed=7), FastGridSampler(space, seed=7)):
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: sum(hash(str(t.suggest_categorical(k, v))) % 7 for k, v in space.items()), n_trials=24)
        orders.append([(t.params, t.system_attrs["grid_id"]) for t in study.trials])
    assert orders[0] == orders[1] and len({str(p) for p, _ in orders[1]}) == 24
    fast = FastGridSampler(space, seed=7)
    assert fast.size == 24 and all(fast.point(gid) == params for params, gid in orders[1])


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
