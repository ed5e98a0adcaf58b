"""Training windows and fixed evaluation batches (data/batches.py)."""

import numpy as np

from dropout_decay.data.batches import WindowSampler, fixed_batches
from dropout_decay.data.cache import load_cache
from tests.conftest import TEST_VOCAB


def test_sampler_is_deterministic_per_seed_and_respects_limit(cache_dir):
    pool = load_cache(cache_dir, TEST_VOCAB).train_pool()
    a, b, c = (WindowSampler(pool, 4, 16, seed) for seed in (1, 1, 2))
    xa, xb, xc = a.sample(), b.sample(), c.sample()
    assert xa.shape == (4, 17) and xa.dtype.is_floating_point is False
    assert (xa == xb).all() and not (xa == xc).all()
    # windows are real slices of the pool
    row = xa[0].numpy()
    starts = np.flatnonzero(np.asarray(pool[: pool.size - 16]) == row[0])
    assert any(np.array_equal(pool[s : s + 17], row) for s in starts)
    # a limit confines every window to the first `limit` tokens
    limited = WindowSampler(pool, 256, 16, 3)
    prefix = np.asarray(pool[:100])
    for _ in range(5):
        for w in limited.sample(100).numpy():
            assert any(np.array_equal(prefix[s : s + 17], w) for s in range(100 - 16))


def test_fixed_batches_cover_the_pool_evenly(cache_dir):
    val = load_cache(cache_dir, TEST_VOCAB).val
    batches = fixed_batches(val, 3, 4, 16)
    assert len(batches) == 3 and all(b.shape == (4, 17) for b in batches)
    assert (batches[0][0].numpy() == val[:17]).all() and (batches[-1][-1].numpy() == val[-17:]).all()
    again = fixed_batches(val, 3, 4, 16)
    assert all((x == y).all() for x, y in zip(batches, again))
