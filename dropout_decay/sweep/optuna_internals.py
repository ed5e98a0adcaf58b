"""Every use of Optuna's private names, in one place, each with the reason no public API serves.

Optuna 5.0 is pinned (pyproject.toml: >=5.0,<5.1). tests/sweep/test_optuna_internals.py calls
`missing()`, which names any of these that an upgrade removed, so a new Optuna fails one test
with a clear message instead of a run failing halfway through a grid.
"""

from __future__ import annotations

import optuna
from optuna.samplers import GridSampler
from optuna.trial import FrozenTrial, TrialState


def storage_of(study: optuna.Study):
    """The storage a study lives in. `Study` keeps it as `_storage` with no public accessor; we
    need it to open a sibling study in the same storage (replay) and to attach artifacts."""
    return study._storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (not its number): storage methods are keyed on it, and neither
    `Trial` nor `FrozenTrial` exposes it publicly."""
    return trial._trial_id


def set_user_attr_of(study: optuna.Study, trial: FrozenTrial, key: str, value) -> None:
    """Set a user attr on a trial this process does not hold as a live `Trial` (another worker's
    dead trial, or one the sampler has just created): the public setter is only on `Trial`."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def fail(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Mark another process's RUNNING trial FAIL; False when someone finished it first. Optuna's
    public API fails only stale-heartbeat trials (`fail_stale_trials`), not a local dead pid's."""
    return study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def system_attrs_of(study: optuna.Study, trial: optuna.Trial) -> dict:
    """A live trial's system attrs (GridSampler's `grid_id`), fresh from the storage:
    `Trial.system_attrs` is deprecated and may be cached."""
    return study._storage.get_trial_system_attrs(trial._trial_id)


def engine_of(storage):
    """The SQLAlchemy engine behind an RDB storage, also when wrapped in Optuna's cache
    (`_CachedStorage._backend`), else None: we fold SQLite's WAL and close pooled connections."""
    return getattr(getattr(storage, "_backend", storage), "engine", None)


class FastGridSampler(GridSampler):
    """GridSampler whose bookkeeping is O(n) a trial instead of O(n x grid).

    Stock GridSampler re-compares every stored trial's search space with its own, value by
    value, before and after each trial (`_same_search_space`). The trials' stored dicts are the
    same objects from one call to the next (Optuna caches finished trials), so the verdict is
    cached by identity. `point` and `size` read the grid it enumerates (`_param_names`,
    `_all_grids`), which GridSampler does not expose.
    """

    def __init__(self, search_space, seed=None, tag_worker=None):
        super().__init__(search_space, seed)
        self._verdicts: dict[int, tuple[object, bool]] = {}
        self._tag_worker = tag_worker

    def _same_search_space(self, search_space) -> bool:
        hit = self._verdicts.get(id(search_space))
        if hit is not None and hit[0] is search_space:
            return hit[1]
        verdict = super()._same_search_space(search_space)
        self._verdicts[id(search_space)] = (search_space, verdict)
        return verdict

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Tag the trial with its worker first: before this, a kill leaves a trial no one owns."""
        if self._tag_worker is not None:
            set_user_attr_of(study, trial, "worker", self._tag_worker())
        super().before_trial(study, trial)

    def point(self, grid_id: int) -> dict:
        return dict(zip(self._param_names, self._all_grids[grid_id]))

    @property
    def size(self) -> int:
        return len(self._all_grids)


def missing() -> list[str]:
    """The private names above that this Optuna lacks (empty when every one is there)."""
    from optuna.storages import RDBStorage
    from optuna.storages._cached_storage import _CachedStorage

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    checks = {
        "Study._storage": hasattr(study, "_storage"),
        "Trial._trial_id": hasattr(trial, "_trial_id"),
        "FrozenTrial._trial_id": hasattr(study.trials[0], "_trial_id"),
        "storage.set_trial_user_attr": hasattr(study._storage, "set_trial_user_attr"),
        "storage.set_trial_state_values": hasattr(study._storage, "set_trial_state_values"),
        "storage.get_trial_system_attrs": hasattr(study._storage, "get_trial_system_attrs"),
        "_CachedStorage._backend": "_backend" in _CachedStorage.__init__.__code__.co_names,
        "RDBStorage.engine": "engine" in RDBStorage.__init__.__code__.co_names,
        "GridSampler._same_search_space": callable(getattr(GridSampler, "_same_search_space", None)),
    }
    grid = GridSampler({"x": [1, 2]})
    checks["GridSampler._param_names"] = hasattr(grid, "_param_names")
    checks["GridSampler._all_grids"] = hasattr(grid, "_all_grids")
    return [name for name, ok in checks.items() if not ok]
