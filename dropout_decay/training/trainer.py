"""Train one grid point: a fresh model through one or more segments, with a dropout schedule.

A screen, confirm or probe point is one segment (the first `--token-limits` training tokens
for its steps); a stream point is several segments over growing caps (`--stage-steps` each).
One code path serves both, so a stream of one segment *is* a static run.

Optimiser: AdamW with linear warmup then cosine decay to `min_lr_ratio`, gradient clipping.
Not nanochat's Muon: Muon orthogonalises updates with Newton-Schulz iterations meant for bf16,
which on MPS is slower or crashes (nanochat #685, #741), and it brings its own learning-rate
scaling; AdamW is the optimiser dropout results are usually reported with, so the dropout effect
is easier to compare. Weight decay defaults to 0 so dropout is the only regulariser.

Seeds: `torch.manual_seed(seed)` fixes the init and the dropout masks; the batch order comes
from a numpy generator of the same seed. An order seed, when given, lays the training documents
out in that seed's order (data/cache.py), so the caps hold other documents. Evaluation batches
depend on neither. Every evaluation measures train, validation and (when the cache holds one)
test loss; validation decides, test judges.
The hot loop never syncs with the device except every `log_every` steps, where the mean
training loss is read and a non-finite value stops the run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..common import UsageError, check_kinds
from ..data import TokenCache, WindowSampler, fixed_batches
from ..model import DEFAULT_MASKS, GPT, MASK_FORMS, ModelSpec, Schedule
from .compiled import PROBE_STEPS, CompileChoice

Trace = Callable[[dict], None]


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 32  # x seq_len = 8,192 tokens a step: 2,000 steps on 5M tokens is 3.3 epochs
    seq_len: int = 256
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_batches: int = 64
    eval_every: int = 500  # intermediate evaluations; every stage also ends with one
    log_every: int = 50
    dropout_masks: int = DEFAULT_MASKS  # how masks are drawn on a CPU (masks.py); 1 replays 0.2's runs
    micro_batch: int | None = None  # sequences per forward/backward; None: the whole batch at once

    def check(self) -> None:
        check_kinds(self)
        for name in ("batch_size", "seq_len", "eval_batches", "log_every"):
            if getattr(self, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.seq_len < 2:
            raise UsageError(f"--seq-len must be at least 2, got {self.seq_len}: with one token of context attention has "
                             "nothing to attend to and its dropout nothing to drop")
        for name in ("warmup_steps", "eval_every", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if self.dropout_masks not in MASK_FORMS:
            raise UsageError(f"--dropout-masks must be one of {', '.join(map(str, MASK_FORMS))}, got {self.dropout_masks}")
        if self.micro_batch is not None and not (0 < self.micro_batch <= self.batch_size
                                                  and self.batch_size % self.micro_batch == 0):
            raise UsageError(f"--micro-batch must divide --batch-size {self.batch_size}, got {self.micro_batch}")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1:
            raise UsageError(f"--lr must be positive and --min-lr-ratio in [0, 1], got {self.lr} and {self.min_lr_ratio}")


@dataclass(frozen=True)
class Segment:
    cap: int  # the segment samples from the first `cap` training tokens
    steps: int


class TrainingDiverged(Exception):
    """The loss went NaN or infinite; the message says where."""


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    warm = min(cfg.warmup_steps, max(total // 10, 1))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(total - warm - 1, 1)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


Loss = Callable[[GPT, torch.Tensor, torch.Tensor], torch.Tensor]


def eager_loss(model: GPT, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return model(inputs, targets)


@torch.no_grad()
def evaluate(model: GPT, batches: list[torch.Tensor], loss: Loss | None = None) -> float:
    """Mean loss with dropout off over fixed batches (one device sync)."""
    loss, was_training = loss or eager_loss, model.training
    model.eval()
    total = sum(loss(model, b[:, :-1], b[:, 1:]) for b in batches)
    model.train(was_training)
    return float(total / len(batches))


def _finite(value: float, what: str, step: int) -> float:
    if not math.isfinite(value):
        raise TrainingDiverged(f"non-finite {what} ({value}) at step {step}")
    return value


def accumulate(model: GPT, batch: torch.Tensor, micro_batch: int | None, loss_of: Loss | None = None) -> torch.Tensor:
    """Forward and backward the batch, `micro_batch` sequences at a time, gradients summed: each
    part's mean loss is weighted by its share of the batch, so the loss and the gradient are the
    whole batch's (to rounding) while only one part's activations are alive at once. Dropout
    masks are drawn per part: the same statistics, other bits, which is why the setting is
    recorded and part of the experiment's fingerprint."""
    loss_of = loss_of or eager_loss
    if not micro_batch or micro_batch >= batch.shape[0]:  # the path of every run before micro-batches
        loss = loss_of(model, batch[:, :-1], batch[:, 1:])
        loss.backward()
        return loss
    parts = batch.split(micro_batch)
    total = torch.zeros((), device=batch.device)
    for part in parts:
        loss = loss_of(model, part[:, :-1], part[:, 1:]) * (part.shape[0] / batch.shape[0])
        loss.backward()
        total += loss.detach()
    return total


def optimizer_step(model: GPT, opt: torch.optim.Optimizer, batch: torch.Tensor, micro_batch: int | None,
                   grad_clip: float, loss_of: Loss | None = None) -> torch.Tensor:
    """One training step (also what the dry run times): the batch's loss and gradients, the
    gradient norm clipped, the update applied and the gradients released."""
    loss = accumulate(model, batch, micro_batch, loss_of)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


UNIFORM_SLACK = 0.01  # nats: the untrained model predicts uniformly (zero head), so trained is below


def worse_than_uniform(val_loss: float, vocab_size: int, step: int, train_loss: float | None = None) -> None:
    """A model that ends a segment predicting worse than a uniform guess over the vocabulary has
    diverged (too high a learning rate, typically), and its loss says nothing about dropout;
    unless it fits its training pool better than uniform: then it has memorised that pool (a map
    cell of many passes without dropout), and its validation loss is the very thing measured."""
    uniform = math.log(vocab_size)
    memorised = train_loss is not None and train_loss < uniform - UNIFORM_SLACK
    if val_loss > uniform + UNIFORM_SLACK and not memorised:
        raise TrainingDiverged(f"validation loss {val_loss:.3f} nats at step {step} is worse than a uniform guess over "
                               f"{vocab_size} tokens (ln {vocab_size} = {uniform:.3f}); try a lower --lr")


def make_optimizer(model: GPT, cfg: TrainConfig, device: str) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8,
                             weight_decay=cfg.weight_decay, fused=device in ("cuda", "mps", "cpu"))


@dataclass(frozen=True)
class PointRun:
    """One grid point's training, whole: the model, its dropout schedule, the segments it trains
    through, the knobs, the seed and where. With the data, it fixes every number `train` returns."""
    spec: ModelSpec
    schedule: Schedule
    segments: list[Segment]
    cfg: TrainConfig
    seed: int
    device: str = "cpu"
    order_seed: int | None = None  # which training documents fill the caps (None: the cache's own order)
    schedule_caps: list[int] | None = None  # the caps a calibrated schedule follows (a twin: the growing stream's)
    compile: str = "off"  # auto, on or off (compiled.py): how, not what, it trains
    compile_horizon: int | None = None  # auto: steps of this shape and graph the process expects to train, this point's included


@dataclass(frozen=True)
class Hooks:
    """What the caller sees while a point trains: every trace row, and a call before each step
    (a worker adjusting its CPU threads, a Ctrl-C check)."""
    trace: Trace = lambda row: None
    between_steps: Callable[[], None] = lambda: None
    compiled: Callable[[dict], None] = lambda choice: None  # eager or compiled, from which step and why
    say: Callable[[str], None] = lambda line: None  # one line for the log (compiling failed)
    paced: Callable[[float], None] = lambda point_s: None  # seconds the point's steps will take, seconds in


@dataclass
class _StepTimer:
    """Times the PROBE_STEPS steps after the first (which may compile): what auto's compile check
    weighs, and what all of the point's steps will take at that pace, known seconds into a grid's
    first point, before a compile that can take a minute (auto's local jobs start on it)."""
    started: float | None = None

    def after_step(self, step: int, loss: torch.Tensor) -> float | None:
        """Seconds per step, once, after step 1 + PROBE_STEPS; None at every other step."""
        if step not in (1, 1 + PROBE_STEPS):
            return None
        float(loss)  # the device has finished the steps timed
        if step == 1:
            self.started = time.perf_counter()
            return None
        return (time.perf_counter() - self.started) / PROBE_STEPS


@dataclass
class _Data:
    """A point's data on its device: the nested pools, and the fixed evaluation batches."""
    pools: list[torch.Tensor]
    sampler: WindowSampler
    val: list[torch.Tensor]
    test: list[torch.Tensor]


def _data(run: PointRun, cache: TokenCache) -> _Data:
    cfg, device = run.cfg, run.device
    pool = cache.train_pool(max(s.cap for s in run.segments), run.order_seed)  # refuses caps beyond the data up front
    val = [b.to(device) for b in fixed_batches(cache.val, cfg.eval_batches, cfg.batch_size, cfg.seq_len)]
    test = [b.to(device) for b in fixed_batches(cache.test, cfg.eval_batches, cfg.batch_size, cfg.seq_len)
            ] if cache.layout.has_test else []
    return _Data([pool[: s.cap] for s in run.segments], WindowSampler(pool, cfg.batch_size, cfg.seq_len, run.seed), val, test)


def _evaluation(model: GPT, data: _Data, train_batches: list[torch.Tensor], step: int, choice: CompileChoice) -> dict:
    """Train, validation and (when the cache holds one) test loss, each with dropout off."""
    def loss(batches, what):
        return _finite(choice.guarded(lambda f: evaluate(model, batches, f), model), what, step)
    train_loss = loss(train_batches, "train eval loss")
    val_loss = loss(data.val, "validation loss")
    test_loss = loss(data.test, "test loss") if data.test else None
    return {"train_loss": train_loss, "val_loss": val_loss, "gap": val_loss - train_loss, "test_loss": test_loss}


def train(run: PointRun, cache: TokenCache, hooks: Hooks = Hooks()) -> list[dict]:
    """Train from fresh init through the run's segments; return one metrics row per segment."""
    cfg, device, vocab = run.cfg, run.device, cache.manifest["vocab_size"]
    data = _data(run, cache)
    total = sum(s.steps for s in run.segments)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    schedule = run.schedule.for_stream(run.schedule_caps or [s.cap for s in run.segments], run.spec.n_params(vocab),
                                       tokens_per_step, [s.steps for s in run.segments])

    torch.manual_seed(run.seed)
    model = GPT(run.spec, vocab, cfg.seq_len, cfg.dropout_masks).to(device)
    model.train()
    opt = make_optimizer(model, cfg, device)

    choice = CompileChoice(run.compile, device, run.spec, total, run.compile_horizon, hooks.say,
                           drops=not run.schedule.never_drops)
    rows, step, timer = [], 0, _StepTimer()
    for index, (segment, pool) in enumerate(zip(run.segments, data.pools)):
        train_batches = [b.to(device) for b in fixed_batches(pool, cfg.eval_batches, cfg.batch_size, cfg.seq_len)]
        loss_sum, n_summed = torch.zeros((), device=device), 0
        for i in range(segment.steps):
            hooks.between_steps()
            p = schedule.rate(step / max(total - 1, 1), index)
            lr = lr_at(step, total, cfg)
            model.set_dropout(p)
            for group in opt.param_groups:
                group["lr"] = lr
            batch = data.sampler.sample(segment.cap).to(device, non_blocking=True)
            loss = choice.guarded(lambda f: optimizer_step(model, opt, batch, cfg.micro_batch, cfg.grad_clip, f), model)
            loss_sum += loss.detach()
            n_summed += 1
            step += 1
            per_step = timer.after_step(step, loss_sum)
            if per_step is not None:
                choice.after_probe(step, per_step)
                hooks.paced(per_step * total)
            last = i == segment.steps - 1
            where = {"step": step, "tokens": step * tokens_per_step, "segment": index}
            if step % cfg.log_every == 0 or last:
                mean = _finite(float(loss_sum) / n_summed, "training loss", step)
                hooks.trace({"kind": "train", **where, "lr": lr, "dropout_in_force": p, "loss": mean})
                loss_sum.zero_()
                n_summed = 0
            if last or (cfg.eval_every and step % cfg.eval_every == 0):
                row = {"kind": "eval", **where, "cap": segment.cap, "dropout_in_force": p,
                       **_evaluation(model, data, train_batches, step, choice)}
                hooks.trace(row)
                if last:
                    rows.append({k: v for k, v in row.items() if k != "kind"})
                    worse_than_uniform(row["val_loss"], vocab, step, row["train_loss"])
    hooks.compiled(choice.record())
    return rows
