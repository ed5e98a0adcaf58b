"""`workflow CONFIG --dry-run`: the whole plan and a time estimate before anything trains.

Stages after the screen depend on what the screen finds; the estimate assumes the dearest
screened model wins and that the stream derives the most arms its rule can (four static
rates, two decays, and the calibrated arm when a probe runs), so it errs long.
"""

from __future__ import annotations

from dataclasses import replace

from ..common import Stage, clock
from ..data import prepare_cache
from ..design import WorkflowFile, mean_rates, pressure_side_by_side, resolve, side_by_side
from ..model import parse_decays
from ..sweep import check_fits, grid_seconds, peak_memory, per_step_text, step_seconds
from ..training import gib, select_device


def print_plan(wf: WorkflowFile, threads: int | None = None) -> int:
    if wf.map_only:
        return print_map_plan(wf, threads)
    screen = wf.settings(Stage.SCREEN, {})
    device = select_device(screen.device)
    check_fits(screen, screen.vocab_size, device.name)  # never builds the data or a model that cannot fit
    cache = prepare_cache(screen.data_source())
    screen = resolve(screen, cache)
    per_step = step_seconds(screen, cache.manifest["vocab_size"], device.name, threads)
    dearest = max(screen.specs(), key=lambda m: per_step[m.label].dropping)
    winner = {"models": [f"winner={dearest.shape}"]}
    cost = {"winner": per_step[dearest.label]}
    plan = [(Stage.SCREEN, screen, per_step)]
    confirm = resolve(wf.settings(Stage.CONFIRM, winner | {"token_limits": screen.token_limits[:1],
                                                       "dropout_rates": screen.dropout_rates}), cache)
    plan.append((Stage.CONFIRM, confirm, cost))
    if Stage.PROBE in wf.tables:
        plan.append((Stage.PROBE, resolve(wf.settings(Stage.PROBE, winner | {"dropout_rates": confirm.dropout_rates}), cache), cost))
    stream = resolve(wf.settings(Stage.STREAM, winner | {"dropout_rates": [0.0, 0.05, 0.1, 0.2]}), cache)
    if "decays" not in wf.tables[Stage.STREAM]:
        stream = replace(stream, decays=["a:0.2:0.1:cosine", "b:0.15:0.05:cosine"])
    extra = 1 if Stage.PROBE in wf.tables and wf.tables[Stage.STREAM].get("calibrated", True) else 0
    extra *= 2 if stream.fixed_pool_controls is True else 1  # the calibrated arm's fixed-pool twin
    plan.append((Stage.STREAM, stream, cost))
    print(f"workflow {wf.name} ({wf.path}) on {device.name} ({device.note}); data: {cache.paths.tokens} "
          f"({cache.n_train:,} training tokens, documents {cache.layout.words()})")
    total = 0.0
    for name, s, steps in plan:
        seconds = grid_seconds(s, steps)
        if name.is_stream and extra:
            seconds *= (len(s.arms()) + extra) / len(s.arms())
        total += seconds
        print(f"  {name}: {_grid(s, extra if name.is_stream else 0)}; about {clock(seconds)}")
        if name.is_stream and "decays" in wf.tables[Stage.STREAM]:
            print(f"    {decay_means(s, cache.manifest['vocab_size'])}")
    memory = peak_memory(screen, cache.manifest["vocab_size"])
    for label, cost in per_step.items():
        print(f"    {label}: {per_step_text(cost)} on {device.name}, training memory about {gib(memory[label])}")
    print(f"  total for one worker: about {clock(total)} (later stages assume the dearest model wins)")
    if wf.scale_model:
        print("\n".join(side_by_side(wf)))
    return 0


def print_map_plan(wf: WorkflowFile, threads: int | None) -> int:
    s = wf.settings(Stage.MAP, {})
    device = select_device(s.device)
    check_fits(s, s.vocab_size, device.name)
    cache = prepare_cache(s.data_source())
    s = resolve(s, cache)
    per_step = step_seconds(s, cache.manifest["vocab_size"], device.name, threads)
    print(f"workflow {wf.name} ({wf.path}) on {device.name} ({device.note}): a map")
    print(f"  map: {_grid(s)}; about {clock(grid_seconds(s, per_step))}\n{map_cost(s)}")
    return 0


def map_cost(s) -> str:
    """A map's cells and what it trains: sum over U of the steps to its largest pass count, in
    tokens, times rates, seeds and models (one run per point stands for its shorter cells)."""
    cells = {n: s.pass_counts(n) for n in s.token_limits}
    runs = len(s.dropout_rates) * len(s.seeds) * len(s.order_seeds or [None]) * len(s.models)
    tokens = sum(s.steps_for(n) for n in s.token_limits) * s.tokens_per_step() * runs
    rows = "; ".join(f"{n:,} x {' '.join(f'{k:g}' for k in ks)}" for n, ks in cells.items())
    return (f"  cells (unique tokens x passes): {rows} = {sum(map(len, cells.values()))} cells\n"
            f"  tokens trained: sum(U x its largest passes) x {runs} runs per limit (rates x seeds x models) = {tokens:,}")


def decay_means(s, vocab_size: int) -> str:
    """Each decay's rate averaged over the stream's steps (what a matched static arm would hold),
    the path it takes cap by cap (its rate at the first and last step of each segment), and the
    stream's pressure coordinates by cap beside the seed's published streams."""
    means = mean_rates(s, vocab_size)
    lines = ["time-averaged rates: " + (", ".join(f"{name} {p:.4f}" for name, p in means.items()) or "no decays")]
    caps, steps = s.stream_token_caps, [s.stage_steps] * len(s.stream_token_caps)
    model = s.specs()[0]
    n_params = model.n_params(vocab_size)
    for d in parse_decays(s.decays, s.calibrations):
        rates = list(d.for_stream(caps, n_params, s.tokens_per_step(), steps).rates_at(steps))
        ends = [(rates[i * s.stage_steps], rates[(i + 1) * s.stage_steps - 1]) for i in range(len(caps))]
        lines.append(f"  {d.name} by cap: " + " | ".join(f"{cap:,}: {a:.3f}" + (f"→{b:.3f}" if abs(a - b) > 5e-4 else "")
                                                      for cap, (a, b) in zip(caps, ends)))
    lines += pressure_side_by_side(model.shape, n_params, caps, s.stage_steps * s.tokens_per_step())
    return "\n".join(lines)


def _grid(s, extra_arms: int = 0) -> str:
    models = " ".join(s.models)
    seeds = f"{len(s.seeds)} seeds" + (f" x {len(s.order_seeds)} order seeds" if s.order_seeds else "")
    if s.stage.is_stream:
        arms = len(s.arms()) + extra_arms
        return (f"{models} x {seeds} x {arms} arms over caps "
                f"{', '.join(f'{c:,}' for c in s.stream_token_caps)} ({s.stage_steps} steps each)")
    steps = ", ".join(str(s.steps_for(n)) for n in s.token_limits)
    return (f"{models} x {seeds} x {len(s.dropout_rates)} rates x token limits "
            f"{', '.join(f'{n:,}' for n in s.token_limits)} ({steps} steps)")
