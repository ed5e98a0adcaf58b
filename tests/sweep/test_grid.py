"""Where each grid point stands, and who owns a point two workers drew (sweep/grid.py): on trials
whose states are set by hand, so the expected answer is known."""

import datetime

import optuna
from optuna.trial import TrialState, create_trial

from dropout_decay.sweep.grid import GridStatus, first_complete, grid_status, surplus_to

C, R, W, F, P = TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL, TrialState.PRUNED


def study_of(trials: list[tuple[int, TrialState]]) -> optuna.Study:
    """Trials in order, each (grid point, state); a COMPLETE one has value = its point."""
    study = optuna.create_study()
    for point, state in trials:
        trial = create_trial(state=state, system_attrs={"grid_id": point}, params={"x": point},
                             distributions={"x": optuna.distributions.IntDistribution(0, 9)},
                             **({"value": float(point)} if state == C else {}))
        if state == C:  # it ran for 10 s per grid point number, plus one
            trial.datetime_start = trial.datetime_complete - datetime.timedelta(seconds=10 * point + 1)
        study.add_trial(trial)
    return study


def test_each_point_counts_once_by_what_happened_to_it():
    study = study_of([(0, F), (0, C), (1, F), (1, R), (2, W), (3, F), (3, F), (4, P), (5, C), (5, C),
                      (6, W), (7, R), (8, F)])
    status = grid_status(study, size=10)
    # 0 and 5 complete (a retry or a duplicate does not count twice), 1 and 7 running, 2 and 6
    # waiting, 3 and 8 failed; 4 only holds a surplus trial that trained nothing: left, with 9
    assert status == GridStatus(10, 2, 2, 2, 2, 2, (1.0, 51.0))  # the first COMPLETE trial of each point
    assert [t.number for t in first_complete(study)] == [1, 8]


def test_a_point_belongs_to_its_complete_trial_else_to_the_lowest_numbered_live_one():
    study = study_of([(0, R), (0, W), (0, R), (1, R), (1, C), (2, F), (2, R), (1, R)])
    trials = study.get_trials(deepcopy=False)

    def owner(number):
        found = surplus_to(study, trials[number])
        return None if found is None else found.number

    assert [owner(n) for n in (0, 1, 2)] == [None, 0, 0]  # the lowest number keeps point 0
    assert owner(3) == owner(7) == 4  # a COMPLETE trial outranks a lower-numbered running one
    assert owner(6) is None  # a failed attempt owns nothing
