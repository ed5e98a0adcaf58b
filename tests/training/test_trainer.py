"""The trainer (training/trainer.py) on tiny models on CPU: loss falls, schedules in force, the
learning rate, micro-batches that give the whole batch's step, a calibrated twin's rates."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from dropout_decay.common.errors import UsageError
from dropout_decay.data import batches
from dropout_decay.data.cache import load_cache
from dropout_decay.model.gpt import GPT, parse_model_spec
from dropout_decay.model.schedules import parse_decay, static
from dropout_decay.training import trainer as train_mod
from dropout_decay.training.trainer import (
    Hooks,
    PointRun,
    Segment,
    TrainConfig,
    TrainingDiverged,
    accumulate,
    train,
)
from tests.conftest import CAPS, TEST_VOCAB

MICRO_CFG = TrainConfig(batch_size=8, seq_len=32, lr=3e-3, warmup_steps=5, eval_batches=2, eval_every=10, log_every=5)


SPEC = parse_model_spec("1x2x32")


def gradients_of_one_step(micro: int | None) -> tuple[float, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = GPT(SPEC, TEST_VOCAB, MICRO_CFG.seq_len)
    batch = torch.randint(0, TEST_VOCAB, (MICRO_CFG.batch_size, MICRO_CFG.seq_len + 1), generator=torch.Generator().manual_seed(1))
    loss = accumulate(model, batch, micro)
    return float(loss.detach()), [p.grad.clone() for p in model.parameters()]


CFG = TrainConfig(batch_size=8, seq_len=32, lr=3e-3, warmup_steps=10, eval_batches=2, eval_every=20, log_every=10)


@pytest.fixture(scope="module")
def cache(cache_dir):
    return load_cache(cache_dir, TEST_VOCAB)


def rates_in_force(schedule, caps: tuple[int, ...], cache) -> set[tuple[int, float]]:
    """(segment, dropout rate) pairs the trainer logged through a stream over `caps`."""
    trace = []
    train(PointRun(SPEC, schedule, [Segment(cap, 10) for cap in caps], CFG, 1), cache, Hooks(trace=trace.append))
    return {(r["segment"], round(r["dropout_in_force"], 9)) for r in trace if r["kind"] == "train"}


def test_a_fixed_twin_of_a_calibrated_decay_keeps_the_growing_streams_per_cap_rates(cache_dir):
    """The law is evaluated at the growing caps (`schedule_caps`), not at the fixed pool's."""
    from dropout_decay.model.gpt import parse_model_spec
    from dropout_decay.model.law import predict
    from dropout_decay.training.trainer import (
        PointRun,
        Segment,
        TrainConfig,
        train,
    )

    law = {"form": "log-linear", "params": {"a": 0.1, "b": 0.02}, "p_range": [0.0, 0.3]}
    spec, cache = parse_model_spec("1x2x32"), load_cache(cache_dir, TEST_VOCAB)
    cfg = TrainConfig(batch_size=2, seq_len=16, eval_batches=1, eval_every=0, log_every=5)
    fixed = [Segment(CAPS[-1], 5) for _ in CAPS]
    rows = train(PointRun(spec, parse_decay("cal:calibrated:x", {"cal": law}), fixed, cfg, 1, schedule_caps=CAPS), cache)
    n = spec.n_params(TEST_VOCAB)
    assert [r["dropout_in_force"] for r in rows] == pytest.approx([predict(law, c / n) for c in CAPS])
    assert [r["cap"] for r in rows] == [CAPS[-1]] * 3


def test_accumulated_parts_give_the_whole_batchs_loss_and_gradient():
    # the oracle: plain autograd on the whole batch, no accumulation code involved
    torch.manual_seed(0)
    model = GPT(SPEC, TEST_VOCAB, MICRO_CFG.seq_len)
    batch = torch.randint(0, TEST_VOCAB, (MICRO_CFG.batch_size, MICRO_CFG.seq_len + 1), generator=torch.Generator().manual_seed(1))
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
    whole = train(PointRun(SPEC, static(0.0), [Segment(6000, 25)], MICRO_CFG, 1), cache)
    parts = train(PointRun(SPEC, static(0.0), [Segment(6000, 25)], replace(MICRO_CFG, micro_batch=2), 1), cache)
    for key in ("train_loss", "val_loss", "test_loss"):
        assert parts[0][key] == pytest.approx(whole[0][key], abs=1e-4)
    with_dropout = train(PointRun(SPEC, static(0.2), [Segment(6000, 25)], replace(MICRO_CFG, micro_batch=2), 1), cache)
    assert with_dropout[0]["val_loss"] != parts[0]["val_loss"]  # dropout is on: masks drawn per part


def test_a_micro_batch_that_does_not_divide_the_batch_is_refused():
    with pytest.raises(UsageError, match="--micro-batch must divide --batch-size 8, got 3"):
        replace(MICRO_CFG, micro_batch=3).check()


def test_same_seed_gives_identical_losses(cache):
    runs = []
    for seed in (1, 1, 2):
        trace = []
        train(PointRun(SPEC, static(0.2), [Segment(8000, 30)], CFG, seed), cache, Hooks(trace=trace.append))
        runs.append([r.get("loss", r.get("val_loss")) for r in trace])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_loss_falls_well_below_uniform(cache):
    cfg = TrainConfig(batch_size=16, seq_len=32, lr=3e-3, warmup_steps=20, eval_batches=4, eval_every=0)
    [row] = train(PointRun(parse_model_spec("2x2x64"), static(0.0), [Segment(cache.n_train, 300)], cfg, 1), cache)
    assert row["train_loss"] < 0.7 * math.log(TEST_VOCAB)
    assert row["val_loss"] < 0.85 * math.log(TEST_VOCAB)
    assert row["gap"] == pytest.approx(row["val_loss"] - row["train_loss"])


def test_stream_honours_stage_boundaries_caps_and_schedule(cache, monkeypatch):
    limits = []
    original = batches.WindowSampler.sample
    monkeypatch.setattr(batches.WindowSampler, "sample", lambda self, limit=None: limits.append(limit) or original(self, limit))
    trace = []
    decay = parse_decay("d:0.30:0.10:linear")
    rows = train(PointRun(SPEC, decay, [Segment(2000, 20), Segment(4000, 20), Segment(8000, 20)], CFG, 3), cache, Hooks(trace=trace.append))
    assert limits == [2000] * 20 + [4000] * 20 + [8000] * 20
    assert [(r["segment"], r["step"], r["cap"]) for r in rows] == [(0, 20, 2000), (1, 40, 4000), (2, 60, 8000)]
    train_rows = [r for r in trace if r["kind"] == "train"]
    assert train_rows[0]["dropout_in_force"] == pytest.approx(0.30 - 0.20 * 9 / 59)  # progress runs over the whole stream
    assert rows[-1]["dropout_in_force"] == pytest.approx(0.10)
    assert [r["segment"] for r in trace if r["kind"] == "eval"] == [0, 1, 2]


def test_cap_beyond_the_pool_is_refused(cache):
    with pytest.raises(UsageError, match="exceeds"):
        train(PointRun(SPEC, static(0.0), [Segment(cache.n_train + 1, 5)], CFG, 1), cache)


def test_non_finite_loss_stops_the_run(cache, monkeypatch):
    from dropout_decay.model.gpt import GPT

    init = GPT.reset_parameters
    monkeypatch.setattr(GPT, "reset_parameters", lambda self: (init(self), self.wte.weight.data.fill_(float("nan"))))
    cfg = TrainConfig(batch_size=8, seq_len=32, eval_batches=2, log_every=5)
    trace = []
    with pytest.raises(TrainingDiverged, match="non-finite training loss .* at step 5"):
        train(PointRun(SPEC, static(0.0), [Segment(8000, 100)], cfg, 1), cache, Hooks(trace=trace.append))
    assert trace == []  # stopped at the first check, nothing trained on


def test_the_smallest_valid_settings_are_accepted():
    TrainConfig(batch_size=1, seq_len=2, eval_batches=1, log_every=1, warmup_steps=0, eval_every=0,
                weight_decay=0.0, grad_clip=0.0, min_lr_ratio=0.0).check()
    TrainConfig(min_lr_ratio=1.0).check()


def test_every_optimizer_step_uses_the_scheduled_learning_rate(cache, monkeypatch):
    used = []
    make_optimizer = train_mod.make_optimizer

    def spying(model, cfg, device):
        opt = make_optimizer(model, cfg, device)
        step = opt.step
        opt.step = lambda *a, **k: (used.append(opt.param_groups[0]["lr"]), step(*a, **k))[1]
        return opt

    monkeypatch.setattr(train_mod, "make_optimizer", spying)
    cfg = TrainConfig(batch_size=4, seq_len=16, lr=2e-3, warmup_steps=3, min_lr_ratio=0.1, eval_batches=1)
    train(PointRun(SPEC, static(0.0), [Segment(4000, 12)], cfg, 1), cache)
    assert used == [train_mod.lr_at(s, 12, cfg) for s in range(12)] and used[-1] < used[3]


def test_grad_clip_clips_every_step_and_zero_turns_it_off(cache, monkeypatch):
    clipped = []
    clip = torch.nn.utils.clip_grad_norm_

    def counting(params, max_norm):
        clipped.append(max_norm)
        return clip(params, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", counting)
    base = dict(batch_size=4, seq_len=16, eval_batches=1)
    train(PointRun(SPEC, static(0.0), [Segment(4000, 6)], TrainConfig(**base, grad_clip=0.5), 1), cache)
    assert clipped == [0.5] * 6
    clipped.clear()
    cfg = TrainConfig(batch_size=8, seq_len=32, lr=3e-3, warmup_steps=5, eval_batches=2, log_every=5, grad_clip=0.0)
    trace = []
    train(PointRun(SPEC, static(0.0), [Segment(8000, 40)], cfg, 1), cache, Hooks(trace=trace.append))
    losses = [r["loss"] for r in trace if r["kind"] == "train"]
    assert clipped == [] and losses[-1] < losses[0] - 0.5  # max_norm 0 would zero every gradient


def test_a_step_decay_sets_each_segments_rate_during_training(cache):
    assert rates_in_force(parse_decay("s:0.3:0.1:step"), (4000, 8000), cache) == {(0, 0.3), (1, 0.1)}


def test_a_calibrated_decay_sets_the_laws_rate_for_each_cap_per_parameter(cache):
    law = {"form": "log-linear", "params": {"a": 0.3, "b": 0.05}, "p_range": [0.0, 0.5]}
    per_param = [cap / SPEC.n_params(TEST_VOCAB) for cap in (4000, 8000)]
    expected = {(k, round(0.3 - 0.05 * math.log(d), 9)) for k, d in enumerate(per_param)}
    assert rates_in_force(parse_decay("cal:calibrated:x", {"cal": law}), (4000, 8000), cache) == expected


def test_a_bad_setting_is_named_in_its_flag_form():
    with pytest.raises(UsageError, match="^--batch-size must be positive, got 0$"):
        TrainConfig(batch_size=0).check()
    with pytest.raises(UsageError, match="^--grad-clip must not be negative, got -1$"):
        TrainConfig(grad_clip=-1).check()


def test_lr_schedule_warms_up_then_decays_to_floor():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [train_mod.lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


def test_validation_batches_come_only_from_held_out_documents_and_overfitting_shows_a_gap(cache, monkeypatch):
    calls = []
    evaluate = train_mod.evaluate
    monkeypatch.setattr(train_mod, "evaluate", lambda model, b, loss=None: calls.append(b) or evaluate(model, b, loss))
    cfg = TrainConfig(batch_size=8, seq_len=32, lr=3e-3, warmup_steps=10, eval_batches=3, eval_every=0)
    [row] = train(PointRun(parse_model_spec("2x2x64"), static(0.0), [Segment(3000, 400)], cfg, 1), cache)
    train_batches, val_batches, test_batches = calls  # one evaluation: the segment's pool, validation, test
    val, pool, test = np.asarray(cache.val), np.asarray(cache.train_pool(3000)), np.asarray(cache.test)

    def inside(window, tokens):
        starts = np.flatnonzero(tokens[: tokens.size - window.size + 1] == window[0])
        return any(np.array_equal(tokens[s : s + window.size], window) for s in starts)

    assert all(inside(w, val) for b in val_batches for w in b.numpy())
    assert all(inside(w, pool) for b in train_batches for w in b.numpy())
    assert all(inside(w, test) for b in test_batches for w in b.numpy())
    assert not any(inside(w, val) or inside(w, test) for b in train_batches for w in b.numpy()[:4])
    assert not any(inside(w, test) for b in val_batches for w in b.numpy()[:4])
    assert row["test_loss"] > row["train_loss"] + 0.5  # unseen documents, like validation
    assert row["gap"] > 0.5  # 400 steps x 256 tokens over a 3,000-token pool: it memorises


def test_the_seed_orders_the_batches_even_with_the_init_held_fixed(cache, monkeypatch):
    from dropout_decay.model.gpt import GPT

    init = GPT.reset_parameters

    def fixed_init(self):
        state = torch.random.get_rng_state()
        torch.manual_seed(1234)  # the same weights whatever the run's seed
        init(self)
        torch.random.set_rng_state(state)

    monkeypatch.setattr(GPT, "reset_parameters", fixed_init)
    runs = []
    for seed in (1, 1, 2):
        trace = []
        train(PointRun(SPEC, static(0.0), [Segment(8000, 20)], CFG, seed), cache, Hooks(trace=trace.append))  # p = 0: no masks
        runs.append([r["loss"] for r in trace if r["kind"] == "train"])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # only the batch order differs


def test_the_learning_rate_and_the_trace_carry_tokens_seen(cache):
    trace = []
    train(PointRun(SPEC, static(0.1), [Segment(4000, 20), Segment(8000, 20)], CFG, 1), cache, Hooks(trace=trace.append))
    assert all(r["tokens"] == r["step"] * CFG.batch_size * CFG.seq_len for r in trace)
    assert [r["step"] for r in trace if r["kind"] == "eval"] == [20, 40]


def test_the_mask_form_reaches_the_model_and_changes_only_runs_with_dropout(cache):
    """`dropout_masks` picks where the CPU's mask bits come from: the same statistics, other bits.
    So form 1 and form 2 must train to different numbers at p > 0 and to the same ones at p = 0."""
    from dataclasses import replace

    def val(p, form):
        return train(PointRun(SPEC, static(p), [Segment(8000, 12)], replace(CFG, dropout_masks=form), 1), cache)[-1]["val_loss"]

    assert val(0.3, 1) != val(0.3, 2)
    assert val(0.3, 2) == val(0.3, 2)  # and each form follows the seed
    assert val(0.0, 1) == val(0.0, 2)


def test_the_test_loss_is_the_loss_on_the_test_splits_fixed_batches_and_validation_on_validations(cache, monkeypatch):
    """Which documents each loss reads: every evaluation's three calls, spied on and recomputed."""
    evaluated = []
    real = train_mod.evaluate

    def spying(model, batch_list, loss_of=None):
        loss = real(model, batch_list, loss_of)
        evaluated.append((torch.cat(batch_list), loss))
        return loss

    monkeypatch.setattr(train_mod, "evaluate", spying)
    cfg = replace(CFG, eval_every=0)
    [row] = train(PointRun(SPEC, static(0.1), [Segment(6000, 20)], cfg, 1), cache)
    train_part, val_part, test_part = evaluated  # one evaluation: training pool, validation, test
    expected = {"train": batches.fixed_batches(cache.train_pool()[:6000], cfg.eval_batches, cfg.batch_size, cfg.seq_len),
                "val": batches.fixed_batches(cache.val, cfg.eval_batches, cfg.batch_size, cfg.seq_len),
                "test": batches.fixed_batches(cache.test, cfg.eval_batches, cfg.batch_size, cfg.seq_len)}
    for (seen, loss), split, key in ((train_part, "train", "train_loss"), (val_part, "val", "val_loss"),
                                     (test_part, "test", "test_loss")):
        assert torch.equal(seen, torch.cat(expected[split])) and row[key] == loss, split
    assert not torch.equal(torch.cat(expected["val"]), torch.cat(expected["test"]))  # the splits really differ
