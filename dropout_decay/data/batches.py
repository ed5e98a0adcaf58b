"""Batches of (B, T+1) token windows: inputs are [:, :-1], targets [:, 1:].

Training windows start at seeded random offsets inside a pool (a memmap view, so a 40M-token
pool costs no copy: only the B*(T+1) gathered tokens are read). Evaluation windows are spread
evenly over a pool, so they are the same for every trial of a study and need no seed.
"""

from __future__ import annotations

import numpy as np
import torch

from ..common import UsageError


def _gather(pool: np.ndarray, starts: np.ndarray, seq_len: int) -> torch.Tensor:
    idx = starts[:, None] + np.arange(seq_len + 1)
    return torch.from_numpy(pool[idx].astype(np.int64))


def _check(pool: np.ndarray, seq_len: int) -> None:
    if pool.size < seq_len + 1:
        raise UsageError(f"a pool of {pool.size:,} tokens is shorter than one window of {seq_len + 1}")


class WindowSampler:
    """Seeded random windows; `sample(limit)` draws from the first `limit` tokens of the pool,
    so a stream can widen its cap between stages while one generator fixes the whole order."""

    def __init__(self, pool: np.ndarray, batch_size: int, seq_len: int, seed: int):
        _check(pool, seq_len)
        self.pool, self.batch_size, self.seq_len = pool, batch_size, seq_len
        self.rng = np.random.default_rng(seed)

    def sample(self, limit: int | None = None) -> torch.Tensor:
        limit = self.pool.size if limit is None else min(limit, self.pool.size)
        _check(self.pool[:limit], self.seq_len)
        starts = self.rng.integers(0, limit - self.seq_len, size=self.batch_size)
        return _gather(self.pool, starts, self.seq_len)


def fixed_batches(pool: np.ndarray, n_batches: int, batch_size: int, seq_len: int) -> list[torch.Tensor]:
    """`n_batches` batches of windows at evenly spaced offsets covering the pool."""
    _check(pool, seq_len)
    n = n_batches * batch_size
    starts = np.linspace(0, pool.size - seq_len - 1, num=n).astype(np.int64)
    return list(_gather(pool, starts, seq_len).split(batch_size))
