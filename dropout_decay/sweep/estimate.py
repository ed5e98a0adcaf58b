"""How long a grid will take: a few timed training steps of each model on the chosen device."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, replace

import torch

from ..common import UsageError, clock
from ..design import Settings
from ..model import ArmKind, GPT
from ..training import (available_bytes, compiled_loss, compiling_pays, eval_bytes, evaluate, gib, make_optimizer,
                        optimizer_step, step_bytes)
from . import cpu

DRY_RUN_ACTIVATIONS = 2**30  # bytes: the dry run times a big batch in parts that fit in this
TIMING_SECONDS = 1.0  # how long each model's steps are timed at each rate, at least


@dataclass(frozen=True)
class StepCost:
    """Seconds of one training step of a model: at p = 0 (no masks drawn, the fused attention
    kernel) and with any rate above 0 (masks drawn and the masked attention recomputed in
    backward; what the rate is barely matters); and of one evaluation batch (forward only)."""
    plain: float
    dropping: float
    evaluation: float
    timed_in_parts: int | None = None  # the part size timed, where the run takes its batch whole
    compiled: StepCost | None = None  # the same steps compiled, where the run will compile them
    compile_seconds: float = 0.0  # what compiling this model's graphs took, once per process
    static_zero_compiled: bool = True  # the p = 0 graph is compiled too (else p = 0 steps take the dropping graph)


def step_seconds(s: Settings, vocab_size: int, device: str, threads: int | None = None) -> dict[str, StepCost]:
    """Each model's StepCost (the median step after a warm-up, over at least two steps and about a
    second: a few ms-long steps alone varied by 40% from one dry run to the next), in the model's micro-batches;
    without them, in parts whose activations fit in 1 GiB, so a dry run of the seed's models does
    not need the 8 GiB their whole batch would (the estimate says so: on a CPU such parts ran in
    0.6-1.0 of the whole batch's time, scripts/bench_memory.py, so it may err short). On a
    CPU, timed with the threads the run would take (the cores shared with workers already live):
    torch's default of every core, beside a running worker, made a step 50 times slower than either alone."""
    cfg, out = s.train, {}
    if device == "cpu":  # as training will: its threads, and glibc keeping freed memory (10% faster steps)
        cpu.share(cpu.planned_threads(threads))
        cpu.keep_freed_memory()
    micro, dropout = micro_batches(s, vocab_size), _dropout(s)
    for spec in s.specs():
        state = step_bytes(spec, vocab_size, 0, cfg.seq_len, False)  # weights, gradients, AdamW, runtime
        timed = micro[spec.label] or largest_part(
            spec, vocab_size, s, dropout, lambda need: need - state <= DRY_RUN_ACTIVATIONS) or 1
        torch.manual_seed(0)
        model = GPT(spec, vocab_size, cfg.seq_len).to(device)
        opt = make_optimizer(model, cfg, device)
        x = torch.randint(0, vocab_size, (cfg.batch_size, cfg.seq_len + 1), device=device)

        def costs(loss=None, first: list | None = None) -> StepCost:
            def step() -> None:
                optimizer_step(model, opt, x, timed, cfg.grad_clip, loss)
                float(model.lm_head.weight.detach()[0, 0])  # sync

            def at(p: float) -> float:
                model.set_dropout(p)
                return typical_seconds(step, first)

            plain = at(0.0)
            parted = timed if not micro[spec.label] and timed < cfg.batch_size else None
            return StepCost(plain, at(0.1) if dropout else plain,
                            typical_seconds(lambda: evaluate(model, [x], loss), first), parted)

        eager = costs()
        if compiles(s, device, spec, eager):
            first: list[tuple[float, float]] = []  # (first call, typical call) of each graph: the excess is compiling
            compiled = costs(compiled_loss, first)
            excess = [max(a - b, 0.0) for a, b in first]  # the p = 0 graph, the dropping one (if any), evaluation
            zero = compiles_static_zero(s, spec, eager)
            eager = replace(eager, compiled=compiled, static_zero_compiled=zero,
                            compile_seconds=sum(excess) - (0.0 if zero else excess[0]))
        out[spec.label] = eager
    return out


def compiles_static_zero(s: Settings, spec, eager: StepCost) -> bool:
    """Whether a compiling run compiles the p = 0 graph too: a p = 0 step takes the graph that
    draws masks where the process holds it (training/compiled.py), so only static-0 points met
    first compile their own, `on` or where auto finds their steps repay it."""
    zeros = sum(a.schedule.never_drops for a in s.arms())
    if not zeros:
        return False
    return s.compile == "on" or compiling_pays(eager.plain, zeros * steps_per_arm(s), spec)[0]


def compiles(s: Settings, device: str, spec, eager: StepCost) -> bool:
    """Whether the run will compile this model's steps: as training/compiled.py decides, over
    every step one worker trains of the model."""
    if s.compile == "off" or (s.compile == "auto" and device == "mps"):
        return False
    return s.compile == "on" or compiling_pays(eager.dropping, len(s.arms()) * steps_per_arm(s), spec)[0]


def steps_per_arm(s: Settings) -> int:
    """Optimiser steps of one model's points of one arm (or static rate), every replicate and limit."""
    return len(s.seeds) * len(s.order_seeds or [None]) * sum(sum(segments) for segments, _ in point_steps(s))


def typical_seconds(run, first: list | None = None) -> float:
    """The median time of `run()` after a warm-up call, over at least two calls and about a second
    (with the warm-up call's time and the median appended to `first`, when given)."""
    times: list[float] = []
    while len(times) < 3 or (sum(times[1:]) < TIMING_SECONDS and len(times) < 50):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    if first is not None:
        first.append((times[0], statistics.median(times[1:])))
    return statistics.median(times[1:])


def point_steps(s: Settings) -> list[tuple[list[int], int]]:
    """(optimiser steps of each segment, evaluations) of each kind of point in the grid, one per token limit."""
    cfg = s.train
    if s.stage.is_stream:
        steps = s.stage_steps * len(s.stream_token_caps)
        return [([s.stage_steps] * len(s.stream_token_caps),
                 (steps // cfg.eval_every if cfg.eval_every else 0) + len(s.stream_token_caps))]
    out = []
    for limit in s.token_limits:
        segments = [seg.steps for seg in s.limit_segments(limit)]
        out.append((segments, (sum(segments) // cfg.eval_every if cfg.eval_every else 0) + len(segments)))
    return out


def grid_seconds(s: Settings, per_step: dict[str, StepCost]) -> float:
    """Seconds one worker needs for the whole grid: every point of every model, its steps with
    dropout on at the dearer cost, each evaluation (forward only, no dropout) on the training
    pool, validation and (where the layout has one) test batches."""
    cfg = s.train
    replicates = len(s.seeds) * len(s.order_seeds or [None])
    eval_sets = 3 if s.layout().has_test else 2
    arms = [a.schedule if a.kind in (ArmKind.CALIBRATED, ArmKind.PRESSURE) else a.schedule.for_stream(s.stream_token_caps or [0], 0)
            for a in s.arms()]
    total = 0.0
    for eager in per_step.values():
        total += eager.compile_seconds
        for segments, evals in point_steps(s):
            for arm in arms:
                cost = compiled_as_run(eager) or eager
                steps = sum(segments) * (cost.plain + arm.share_dropping(segments) * (cost.dropping - cost.plain))
                total += replicates * (steps + evals * eval_sets * cfg.eval_batches * cost.evaluation)
    return total


def _dropout(s: Settings) -> bool:
    return max(s.dropout_rates or [0.0]) > 0 or (s.stage.is_stream and bool(s.decays))


def largest_part(spec, vocab_size: int, s: Settings, dropout: bool, fits) -> int | None:
    """The largest divisor of the batch whose step's bytes `fits` accepts (None if none does)."""
    cfg = s.train
    return next((m for m in range(cfg.batch_size, 0, -1) if cfg.batch_size % m == 0
                 and fits(step_bytes(spec, vocab_size, m, cfg.seq_len, dropout))), None)


def micro_batches(s: Settings, vocab_size: int) -> dict[str, int | None]:
    """Each model's micro-batch: the one given, else the largest divisor of the batch whose step
    fits `memory_budget` (None: the whole batch). Refuses a budget no micro-batch meets."""
    cfg, out = s.train, {}
    for spec in s.specs():
        if cfg.micro_batch or s.memory_budget is None:
            out[spec.label] = cfg.micro_batch
            continue
        part = largest_part(spec, vocab_size, s, _dropout(s), lambda need: need <= s.memory_budget * 2**30)
        if part is None:
            least = step_bytes(spec, vocab_size, 1, cfg.seq_len, _dropout(s))
            raise UsageError(f"--memory-budget {s.memory_budget:g} GiB: {spec.label} needs {gib(least)} even one sequence "
                             "at a time; raise the budget or use a smaller model or --seq-len")
        out[spec.label] = None if part == cfg.batch_size else part
    return out


@dataclass(frozen=True)
class MemoryNeed:
    """What one model of a grid needs, in bytes, from its shapes alone (training/memory.py)."""
    state: int  # weights, gradients, AdamW's moments and torch's own
    step: int  # a training step of one part, state included
    evaluation: int  # the fixed evaluation batches and one forward pass's logits
    part: int  # sequences per forward and backward

    @property
    def total(self) -> int:
        return self.step + self.evaluation


def memory_needs(s: Settings, vocab_size: int) -> dict[str, MemoryNeed]:
    cfg, micro, dropout = s.train, micro_batches(s, vocab_size), _dropout(s)
    splits = 3 if s.layout().has_test else 2
    out = {}
    for spec in s.specs():
        part = micro[spec.label] or cfg.batch_size
        out[spec.label] = MemoryNeed(step_bytes(spec, vocab_size, 0, cfg.seq_len, False),
                                     step_bytes(spec, vocab_size, part, cfg.seq_len, dropout),
                                     eval_bytes(spec, vocab_size, cfg.batch_size, cfg.seq_len, cfg.eval_batches, splits),
                                     part)
    return out


def check_fits(s: Settings, vocab_size: int, device: str) -> tuple[dict[str, MemoryNeed], int | None]:
    """Refuse, before anything is built, a model whose training needs more memory than the
    machine has available, naming what it needs, what is there and the flag that fixes it.
    DROPOUT_DECAY_MEMORY_GIB, when set, stands for the memory available (to plan for another machine)."""
    override = os.environ.get("DROPOUT_DECAY_MEMORY_GIB")
    available = int(float(override) * 2**30) if override else available_bytes(device)
    needs = memory_needs(s, vocab_size)
    for label, need in needs.items():
        if available is not None and need.total > available:
            raise UsageError(f"{label} needs about {gib(need.total)} to train ({gib(need.state)} weights, gradients and "
                             f"AdamW state; {gib(need.step - need.state)} for {need.part} x {s.train.seq_len} tokens at "
                             f"once; {gib(need.evaluation)} for {s.train.eval_batches} evaluation batches) and "
                             f"{gib(available)} is available on {device}: {_fix(s, vocab_size, label, need, available)}")
    return needs, available


def _fix(s: Settings, vocab_size: int, label: str, need: MemoryNeed, available: int) -> str:
    """The flag that makes the step fit: parts of the batch if some part would, else smaller shapes."""
    spec = next(m for m in s.specs() if m.label == label)
    room = available - need.evaluation
    part = largest_part(spec, vocab_size, s, _dropout(s), lambda step: step <= room) if room > need.state else None
    evals = " or fewer --eval-batches" if need.evaluation > available / 4 else ""
    if part:
        return (f"train it in parts with --micro-batch {part} (or --memory-budget {room / 2**30 * 0.9:.1f}){evals}, "
                "or use a smaller --batch-size")
    if need.state > available / 2:
        return "choose a smaller model: its weights and optimizer state alone leave no room"
    return f"use a smaller --batch-size or --seq-len{evals}, or a smaller model"


def peak_memory(s: Settings, vocab_size: int) -> dict[str, int]:
    """Bytes one training step of each model needs (training/memory.py), at the grid's highest
    rate and its micro-batch."""
    micro = micro_batches(s, vocab_size)
    return {spec.label: step_bytes(spec, vocab_size, micro[spec.label] or s.train.batch_size, s.train.seq_len, _dropout(s))
            for spec in s.specs()}


def describe_estimate(s: Settings, per_step: dict[str, float], vocab_size: int, available: int | None = None) -> str:
    memory, micro = peak_memory(s, vocab_size), micro_batches(s, vocab_size)
    needs = memory_needs(s, vocab_size)
    parts = {label: f" in micro-batches of {m}" if m else "" for label, m in micro.items()}
    room = f" of {gib(available)} available" if available else ""
    lines = [f"  {label}: {per_step_text(cost)}, training memory about {gib(memory[label])}{parts[label]} "
             f"({gib(needs[label].total)} with its evaluation batches{room})" for label, cost in per_step.items()]
    return "\n".join(lines + [f"  total for one worker: {clock(grid_seconds(s, per_step))}"])


def compiled_as_run(cost: StepCost) -> StepCost | None:
    """The compiled steps as the run takes them: p = 0 through the graph that draws masks, at its
    cost, where the p = 0 graph is not compiled (training/compiled.py)."""
    if cost.compiled is None or cost.static_zero_compiled:
        return cost.compiled
    return replace(cost.compiled, plain=cost.compiled.dropping)


def per_step_text(cost: StepCost) -> str:
    if cost.compiled:
        return (f"{_ms(compiled_as_run(cost))} compiled, after {cost.compile_seconds:.0f} s compiling once per process "
                f"(eager {_ms(cost)})")
    return _ms(cost)


def _ms(cost: StepCost) -> str:
    dropping = f" ({cost.dropping * 1e3:.0f} with dropout)" if cost.dropping != cost.plain else ""
    parted = (f" [timed in parts of {cost.timed_in_parts} sequences, since the whole batch needs more memory than a "
              "dry run takes; whole batches may run slower: --memory-budget trains in parts too]") if cost.timed_in_parts else ""
    return f"{cost.plain * 1e3:.0f} ms/step{dropping}{parted}"
