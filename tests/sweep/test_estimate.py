"""Estimates (sweep/estimate.py): a memory budget picks the largest micro-batch that fits."""

from dataclasses import replace

import pytest

from dropout_decay.common.errors import UsageError
from dropout_decay.design import Settings, check
from dropout_decay.model.gpt import parse_model_spec
from dropout_decay.sweep.estimate import micro_batches
from dropout_decay.training.memory import step_bytes
from dropout_decay.training.trainer import (
    TrainConfig,
)
from tests.conftest import TEST_VOCAB

MICRO_CFG = TrainConfig(batch_size=8, seq_len=32, lr=3e-3, warmup_steps=5, eval_batches=2, eval_every=10, log_every=5)


def test_a_memory_budget_picks_the_largest_micro_batch_that_fits_and_refuses_one_none_meets():
    s = check(Settings(stage="screen", models=["2x4x64"], train=replace(MICRO_CFG, batch_size=16), dropout_rates=[0, 0.1, 0.2]))
    need = {m: step_bytes(parse_model_spec("2x4x64"), TEST_VOCAB, m, MICRO_CFG.seq_len, True) for m in (16, 8, 4, 2, 1)}
    assert need[16] > need[8] > need[4] > need[1]
    between = (need[4] + need[8]) / 2 / 2**30
    assert micro_batches(replace(s, memory_budget=between), TEST_VOCAB) == {"2x4x64": 4}
    assert micro_batches(replace(s, memory_budget=need[16] / 2**30 + 1), TEST_VOCAB) == {"2x4x64": None}
    assert micro_batches(s, TEST_VOCAB) == {"2x4x64": None}  # no budget: the whole batch
    with pytest.raises(UsageError, match="even one sequence at a time"):
        micro_batches(replace(s, memory_budget=need[1] / 2**30 / 2), TEST_VOCAB)
