"""A scale model beside the experiment it stands for: the numbers that govern overfitting.

A workflow file with a `[scale_model]` table names the workflow it models (`of`, e.g. the seed's
`workflow`) and each one's locked model (`winner`, `of_winner`). Overfitting is governed by how
many tokens each parameter has (D = tokens / parameters, at every token limit and stream cap),
how often the data is seen (passes: steps × tokens per step / limit), how the stream's steps
compare with the screen's, and where the learning-rate warm-up ends as a fraction of the run; a
small model matched in those runs the same experiment on a CPU. What the scale model does not
match (width, depth, the vocabulary's share of the parameters, the batch) it says in
`not_matched`, each with its reason, and the dry run prints it.
"""

from __future__ import annotations

from ..common import Stage
from ..model import parse_model_spec
from .plan import WorkflowFile, load_workflow
from .settings import Settings


def _warmup_fraction(s: Settings, total: int) -> float:
    return min(s.train.warmup_steps, max(total // 10, 1)) / total


def numbers(wf: WorkflowFile, winner: str) -> list[tuple[str, float]]:
    """(what, value) pairs in a fixed order, for one workflow and its locked model."""
    screen = wf.settings(Stage.SCREEN, {})
    tokens = screen.tokens_per_step()
    vocab = screen.vocab_size
    win = parse_model_spec(winner).n_params(vocab)
    out = [(f"screen model {i + 1} / locked model, parameters", m.n_params(vocab) / win)
           for i, m in enumerate(sorted(screen.specs(), key=lambda m: m.n_params(vocab)))]
    limit = screen.token_limits[0]
    out += [("screen: tokens per parameter (locked model)", limit / win),
            ("screen: passes over the limit", screen.steps * tokens / limit),
            ("screen: warm-up, fraction of the run", _warmup_fraction(screen, screen.steps))]
    if Stage.PROBE in wf.tables:
        probe = wf.settings(Stage.PROBE, {"models": [winner]})
        out += [(f"probe cap {i + 1}: tokens per parameter", cap / win) for i, cap in enumerate(probe.token_limits)]
        out += [("probe: passes over each cap", probe.passes)]
    stream = wf.settings(Stage.STREAM, {"models": [f"winner={winner}"]}, forced=set())
    total = stream.stage_steps * len(stream.stream_token_caps)
    out += [(f"stream cap {i + 1}: tokens per parameter", cap / win) for i, cap in enumerate(stream.stream_token_caps)]
    out += [(f"stream cap {i + 1}: passes in its segment", stream.stage_steps * stream.tokens_per_step() / cap)
            for i, cap in enumerate(stream.stream_token_caps)]
    out += [("stream: steps per segment / screen steps", stream.stage_steps / screen.steps),
            ("stream: warm-up, fraction of the run", _warmup_fraction(stream, total))]
    return out


def side_by_side(wf: WorkflowFile) -> list[str]:
    """Lines for the dry run: the scale model's numbers beside those of the workflow it models."""
    table = wf.scale_model
    ours, theirs = numbers(wf, table["winner"]), numbers(load_workflow(table["of"]), table["of_winner"])
    lines = [f"  scale model of `{table['of']}` (locked {table['winner']} here, {table['of_winner']} there):",
             f"    {'':52} {'here':>10} {'there':>10} {'ratio':>7}"]
    for (what, a), (what_there, b) in zip(ours, theirs):
        label = what if what == what_there else f"{what} | {what_there}"
        lines.append(f"    {label:52} {a:10.4g} {b:10.4g} {a / b if b else float('nan'):7.3f}")
    lines += ["    not matched:"] + [f"      {k}: {v}" for k, v in table.get("not_matched", {}).items()]
    return lines
