"""Micro-batches (issue 25): a step split into parts with gradients accumulated is the whole
batch's step, to rounding; a memory budget picks the largest part that fits; stored studies
without the setting keep their fingerprints."""

from dataclasses import replace

import pytest
import torch

from dropout_decay.common.errors import UsageError
from dropout_decay.data.cache import load_cache
from dropout_decay.model.gpt import GPT, parse_model_spec
from dropout_decay.model.schedules import static
from dropout_decay.sweep.estimate import micro_batches
from dropout_decay.design.settings import Settings, check
from dropout_decay.training.memory import step_bytes
from dropout_decay.training.trainer import Hooks, PointRun, Segment, TrainConfig, accumulate, train

from conftest import TEST_VOCAB

CFG = TrainConfig(batch_size=8, seq_len=32, lr=3e-3, warmup_steps=5, eval_batches=2, eval_every=10, log_every=5)
SPEC = parse_model_spec("1x2x32")


def gradients_of_one_step(micro: int | None) -> tuple[float, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = GPT(SPEC, TEST_VOCAB, CFG.seq_len)
    batch = torch.randint(0, TEST_VOCAB, (CFG.batch_size, CFG.seq_len + 1), generator=torch.Generator().manual_seed(1))
    loss = accumulate(model, batch, micro)
    return float(loss.detach()), [p.grad.clone() for p in model.parameters()]


def test_accumulated_parts_give_the_whole_batchs_loss_and_gradient():
    # the oracle: plain autograd on the whole batch, no accumulation code involved
    torch.manual_seed(0)
    model = GPT(SPEC, TEST_VOCAB, CFG.seq_len)
    batch = torch.randint(0, TEST_VOCAB, (CFG.batch_size, CFG.seq_len + 1), generator=torch.Generator().manual_seed(1))
    whole = model(batch[:, :-1], batch[:, 1:])
    whole.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    for micro in (None, 8, 4, 2, 1):
        loss, grads = gradients_of_one_step(micro)
        assert loss == pytest.approx(float(whole), abs=1e-6)
        for got, want in zip(grads, expected):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert gradients_of_one_step(None)[0] == float(whole)  # without parts: the same bits as ever


def test_training_in_micro_batches_at_p0_matches_the_whole_batch(cache_dir):
    cache = load_cache(cache_dir, TEST_VOCAB)
    whole = train(PointRun(SPEC, static(0.0), [Segment(6000, 25)], CFG, 1), cache)
    parts = train(PointRun(SPEC, static(0.0), [Segment(6000, 25)], replace(CFG, micro_batch=2), 1), cache)
    for key in ("train_loss", "val_loss", "test_loss"):
        assert parts[0][key] == pytest.approx(whole[0][key], abs=1e-4)
    with_dropout = train(PointRun(SPEC, static(0.2), [Segment(6000, 25)], replace(CFG, micro_batch=2), 1), cache)
    assert with_dropout[0]["val_loss"] != parts[0]["val_loss"]  # dropout is on: masks drawn per part


def test_a_micro_batch_that_does_not_divide_the_batch_is_refused():
    with pytest.raises(UsageError, match="--micro-batch must divide --batch-size 8, got 3"):
        replace(CFG, micro_batch=3).check()


def test_a_memory_budget_picks_the_largest_micro_batch_that_fits_and_refuses_one_none_meets():
    s = check(Settings(stage="screen", models=["2x4x64"], train=replace(CFG, batch_size=16), dropout_rates=[0, 0.1, 0.2]))
    need = {m: step_bytes(parse_model_spec("2x4x64"), TEST_VOCAB, m, CFG.seq_len, True) for m in (16, 8, 4, 2, 1)}
    assert need[16] > need[8] > need[4] > need[1]
    between = (need[4] + need[8]) / 2 / 2**30
    assert micro_batches(replace(s, memory_budget=between), TEST_VOCAB) == {"2x4x64": 4}
    assert micro_batches(replace(s, memory_budget=need[16] / 2**30 + 1), TEST_VOCAB) == {"2x4x64": None}
    assert micro_batches(s, TEST_VOCAB) == {"2x4x64": None}  # no budget: the whole batch
    with pytest.raises(UsageError, match="even one sequence at a time"):
        micro_batches(replace(s, memory_budget=need[1] / 2**30 / 2), TEST_VOCAB)


def test_a_study_stored_without_micro_batches_keeps_its_fingerprint():
    stored = Settings.from_dict({"stage": "screen", "models": ["1x2x32"], "train": {"batch_size": 8}}, stored=True)
    old = dict(stored.to_dict())
    old["train"] = {k: v for k, v in old["train"].items() if k != "micro_batch"}
    old.pop("memory_budget")
    assert Settings.from_dict(old, stored=True).fingerprint({}) == stored.fingerprint({})
    assert replace(stored, train=replace(stored.train, micro_batch=4)).fingerprint({}) != stored.fingerprint({})
