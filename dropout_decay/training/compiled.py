"""Compiled training steps: the model's forward and backward through `torch.compile`, with the
dropout masks drawn outside the graph.

Why outside: masks come from numpy's generator on a CPU (model/masks.py), which no graph can
hold, and a rate read inside the graph would be a constant that every change of a schedule
recompiles. So each step draws its masks first, as the eager forward would in the same order
from the same generators (the same elements dropped), and hands them and the scale 1/(1-p) to
the graph as tensors. One graph serves every rate above 0 (and p = 0 where the process holds no
p = 0 graph), another p = 0 and another evaluation; points of one shape in one process share
them (the model is an input, not part of the graph).
The graph keeps DropKey's boolean mask and the attention's outputs for backward and rebuilds the
additive mask there (selective checkpointing, model/gpt.py), so a compiled step takes no more
memory than an eager one (at 12x8x384 on 4 x 256 tokens, 486 MB against 515; tests/training).
In 0.7 compiling failed at p > 0 because the masks were drawn inside the traced forward.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..model import GPT, Drawn, ModelSpec, draw_all, keep_everything

COMPILE_MODES = ("auto", "on", "off")
PROBE_STEPS = 8  # steps the trainer times (after the first): auto decides on them, and local jobs start
GAIN = 0.25  # auto: the share of a step's time compiling saves, at the least measured (1.33x; bench_speed.py)
RECOMPILE_LIMIT = 64  # graphs of one function: shapes x (dropout, none, evaluation); torch's default 8 is a screen's


def compile_guess_s(spec: ModelSpec) -> float:
    """Seconds compiling a point's training and evaluation graphs takes, as measured on 2 CPU cores
    (1x2x32 about 6, 3x4x96 about 8, 8x8x256 about 14 per graph): what auto weighs the gain against."""
    return 2 * (4.0 + 1.2 * spec.depth)


def compiling_pays(per_step_s: float, steps: int, spec: ModelSpec) -> tuple[bool, float, float]:
    """Auto's rule, for the trainer and the dry run alike: (pays, seconds saved, seconds it costs)
    over `steps` eager steps of `per_step_s` each."""
    saved, cost = per_step_s * steps * GAIN, compile_guess_s(spec)
    return saved > cost, saved, cost


def _loss(model: GPT, inputs: torch.Tensor, targets: torch.Tensor, sites: tuple, scale) -> torch.Tensor:
    return model(inputs, targets, Drawn(list(sites), scale))


@dataclass
class _Process:
    """This process's one compiled function (made on first use), the graphs it holds, and
    whether compiling failed here (then nothing is compiled again)."""
    function: Callable | None = None
    graphs: set = field(default_factory=set)
    seconds: float = 0.0
    broken: str | None = None


_HERE = _Process()


def _graph_key(model: GPT, inputs: torch.Tensor, dropping: bool) -> tuple:
    return (model.spec.shape, model.vocab_size, *inputs.shape, inputs.device.type, model.training, dropping,
            torch.is_grad_enabled())


def _training_graph(key: tuple) -> tuple:
    """(shape, draws masks) of a training graph's key; None for an evaluation's."""
    shape, *_, training, dropping, _grad = key
    return (shape, dropping) if training else None


def compiled_loss(model: GPT, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The batch's mean loss through the compiled graph, at the model's rate (none in eval mode).
    A training step at p = 0 goes through the graph that draws masks, with masks that keep
    everything, where this process holds that graph and not the p = 0 one: a static-0 point or a
    decay's last steps at 0 then compile nothing. The p = 0 graph is faster by 0-12% (most at the
    smallest models, bench_speed.py) but costs as much to compile as the other."""
    if _HERE.function is None:
        # torch warns, once and at length, that a checkpointed region under compile must hold no
        # in-place op; the masked attention's (model/gpt.py) holds none
        logging.getLogger("torch._higher_order_ops.wrap").setLevel(logging.ERROR)
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
        _HERE.function = torch.compile(_loss, dynamic=False)
    s, (B, T) = model.spec, inputs.shape
    p = model.dropout if model.training else 0.0
    if p == 0 and model.training and _graph_key(model, inputs, True) in _HERE.graphs \
            and _graph_key(model, inputs, False) not in _HERE.graphs:
        drawn = keep_everything(B, T, s.width, s.heads, s.depth, inputs.device)  # no graph to compile
    else:
        drawn = draw_all(B, T, s.width, s.heads, s.depth, p, inputs.device, model.masks)
    key, start = _graph_key(model, inputs, bool(drawn.sites)), time.perf_counter()
    loss = _HERE.function(model, inputs, targets, tuple(drawn.sites), drawn.scale)
    if key not in _HERE.graphs:
        _HERE.graphs.add(key)
        _HERE.seconds += time.perf_counter() - start
    return loss


def compile_stats() -> dict:
    """Graphs compiled in this process and the seconds their first calls took."""
    return {"graphs": len(_HERE.graphs), "seconds": round(_HERE.seconds, 3), "broken": _HERE.broken}


def has_graphs_for(spec: ModelSpec, drops: bool = True) -> bool:
    """Does this process hold a training graph a point of this shape can train through: the one
    that draws masks, or for a point that never drops (static 0) either that one or the p = 0 one?"""
    return any(_training_graph(key) in ((spec.shape, True), (spec.shape, drops)) for key in _HERE.graphs)


@dataclass
class CompileChoice:
    """Eager or compiled, for one point: `on` compiles from the first step, `off` never, `auto`
    times its first eager steps and compiles when what this process has left to train of the
    shape (the horizon: this point and its share of the grid's other points of the model that
    would compile the same graph: a static-0 point with no graph held compiles the p = 0 one)
    would save more than compiling costs (at once where this process holds a graph the point can
    train through; never on MPS, where compiling was not measured faster). A compiled step that
    fails runs again eager, from the same generator state, and the process stays eager from then
    on, saying so once. `record` gets what was chosen and why, for the trial."""
    mode: str
    device: str
    spec: ModelSpec
    total_steps: int  # this point's
    horizon_steps: int | None = None  # steps of this shape and graph this process expects to train, this point's included
    say: Callable[[str], None] = lambda line: None
    drops: bool = True  # the point draws masks (all but static 0): which training graph it needs
    compiled: bool = False
    from_step: int | None = None
    reason: str = ""

    def __post_init__(self):
        if _HERE.broken:
            self.reason = f"eager: compiling failed earlier in this process ({_HERE.broken})"
        elif self.mode == "on":
            self._switch(0, "on: compiled from the first step")
        elif self.mode == "off":
            self.reason = "off: eager"
        elif self.device == "mps":
            self.reason = "auto: eager on MPS (compiled training was not measured faster there)"
        elif has_graphs_for(self.spec, self.drops):
            self._switch(0, "auto: compiled from the first step, this process holds the shape's graphs")
        else:
            self.reason = "auto: eager (what is left to train of this shape is too short for compiling to pay)"

    def _switch(self, step: int, reason: str) -> None:
        self.compiled, self.from_step, self.reason = True, step, reason

    def record(self) -> dict:
        return {"mode": self.mode, "compiled": self.compiled, "from_step": self.from_step, "reason": self.reason}

    def after_probe(self, step: int, per_step: float) -> None:
        """Auto's measured check, once the trainer has timed the PROBE_STEPS steps after the first
        (`per_step` seconds each; `step` of them so far)."""
        if self.compiled or self.mode != "auto" or self.device == "mps" or _HERE.broken:
            return
        horizon = max(self.horizon_steps or 0, self.total_steps)
        pays, saved, cost = compiling_pays(per_step, horizon - step, self.spec)
        if pays:
            self._switch(step, f"auto: compiled from step {step} (eager {per_step * 1e3:.0f} ms/step; "
                               f"about {saved:.0f} s saved for about {cost:.0f} s compiling)")

    def guarded(self, work: Callable[[Callable | None], object], model: GPT) -> object:
        """Run `work(loss)` compiled if chosen; if that fails, once more eager from the same state."""
        if not self.compiled:
            return work(None)
        state = torch.get_rng_state()
        try:
            return work(compiled_loss)
        except Exception as e:  # compiling is unavailable here (no C++ compiler, an unsupported op): go on eager
            _HERE.broken = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            self.compiled, self.reason = False, f"eager: compiling failed ({_HERE.broken})"
            self.say(f"  compiling failed, training eager from here: {_HERE.broken}")
            torch.set_rng_state(state)
            model.zero_grad(set_to_none=True)
            return work(None)
