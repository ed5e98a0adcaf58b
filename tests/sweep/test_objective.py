"""The objective's compile horizon (sweep/objective.py): what compiling a graph can pay back over
is the grid's points of the same model that train through that graph, static 0 through its own."""

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import create_trial

from dropout_decay.data import load_cache
from dropout_decay.design import Settings, check
from dropout_decay.sweep import cpu
from dropout_decay.sweep.grid import search_space
from dropout_decay.sweep.objective import PointRunner
from tests.conftest import TEST_VOCAB


def test_the_horizon_counts_the_unfinished_points_of_the_same_model_and_graph(cache_dir, monkeypatch):
    monkeypatch.setattr(cpu, "live_workers", lambda: 2)  # two workers share what is left
    s = check(Settings(stage="screen", models=["1x2x32", "1x2x48"], seeds=[1, 2, 3], dropout_rates=[0.0, 0.1, 0.2],
                       token_limits=[4000], steps=10, vocab_size=TEST_VOCAB, cache_dir=str(cache_dir), device="cpu"))
    runner = PointRunner(s, load_cache(cache_dir, TEST_VOCAB), "cpu")
    space = search_space(s)
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space, seed=0))
    point = lambda model, p, seed: {"model": model, "seed": seed, "dropout": p, "tokens": 4000}  # noqa: E731
    # by hand: 1x2x32 has 3 seeds x 1 rate at p = 0 and 3 x 2 above it; 10 steps each, halved
    assert runner.compile_horizon(study, point("1x2x32", 0.0, 1)) == 10 * 3 // 2
    assert runner.compile_horizon(study, point("1x2x32", 0.1, 1)) == 10 * 6 // 2
    for done in (point("1x2x32", 0.2, 1), point("1x2x32", 0.2, 2), point("1x2x48", 0.1, 1)):
        study.add_trial(create_trial(params=done, value=1.0,
                                     distributions={k: CategoricalDistribution(v) for k, v in space.items()}))
    assert runner.compile_horizon(study, point("1x2x32", 0.1, 1)) == 10 * 4 // 2  # two of its six are done
    assert runner.compile_horizon(study, point("1x2x32", 0.0, 1)) == 10 * 3 // 2  # none of its graph's
    assert runner.compile_horizon(study, point("1x2x48", 0.2, 3)) == 10 * 5 // 2
