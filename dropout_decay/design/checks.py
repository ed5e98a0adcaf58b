"""The checks every setting passes before anything is written: `check` fills the defaults that
need no data and refuses, one problem at a time in one line, what cannot run or cannot mean what
it says (wrong kinds, numbers outside what they feed, a stage's settings on another stage)."""

from __future__ import annotations

from dataclasses import replace

from ..common import Stage, UsageError, check_kinds
from ..data import Layout
from ..model import check_rate, is_calibrated, parse_decays, read_calibration, read_pressure_law, reads_law
from ..training import COMPILE_MODES
from .declared import check_claims
from .settings import DEFAULT_STATIC_RATES, DEFAULT_STREAM_RATES, Settings

SEED_MAX = 2**63 - 1  # numpy's generators take no negative seed, torch and SQLite none wider than 64 bits
GRID_SEED_MAX = 2**32 - 1  # GridSampler draws its order with numpy's RandomState
VOCAB_RANGE = (258, 65536)  # the 256 bytes and BOS at least; ids stored as uint16
MAX_STEPS = 10**9  # a point of more steps than this would not end


def _positive(name: str, value) -> None:
    if value <= 0:
        raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")


def check(s: Settings, explicit: frozenset[str] | set[str] = frozenset()) -> Settings:
    """Fill the defaults that need no data and refuse bad input, one problem at a time.
    `explicit`: the settings the user gave (a default warm-up adapts to a short run; a given one
    longer than the run is refused)."""
    check_kinds(s, skip={"train", "fixed_pool_controls", "claims", "calibrations"})
    seeds, rates = _checked_grid(s)
    _check_numbers(s)
    s = _checked_twins(s)
    s = _checked_passes(s)
    _check_limits(s)
    _check_steps(s, "warmup_steps" in explicit)
    calibrations = _checked_stream(s) if s.stage.is_stream else s.calibrations
    return replace(s, seeds=list(seeds), dropout_rates=rates, calibrations=calibrations)


def _checked_grid(s: Settings) -> tuple[list[int], list[float]]:
    """The grid's factors: distinct model labels, seeds (a confirm's exactly 3), distinct rates."""
    labels = [m.label for m in s.specs()]
    if len(set(labels)) != len(labels):
        raise UsageError(f"model labels repeat: {' '.join(s.models)}")
    seeds = s.seeds if s.seeds is not None else s.stage.default_seeds
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds must be distinct integers, got {seeds}")
    _check_seeds("--seeds", seeds, SEED_MAX)
    if s.stage.exact_seeds and len(seeds) != s.stage.exact_seeds:
        raise UsageError(f"{s.stage} needs exactly {s.stage.exact_seeds} seeds, got {len(seeds)}: {' '.join(map(str, seeds))}")
    rates = s.dropout_rates if s.dropout_rates is not None else (
        DEFAULT_STREAM_RATES if s.stage.is_stream else DEFAULT_STATIC_RATES)
    rates = [check_rate(p) for p in rates]
    if len(set(rates)) != len(rates):
        raise UsageError(f"--dropout-rates repeat a value: {rates}")
    if not s.stage.is_stream and len(rates) < 3:
        raise UsageError("a static sweep needs at least 3 dropout rates to locate an interior optimum")
    return seeds, rates


def _check_seeds(flag: str, seeds: list[int], top: int) -> None:
    bad = [x for x in seeds if not 0 <= x <= top]
    if bad:
        raise UsageError(f"{flag} must lie in 0..{top:,} (the range every generator it seeds accepts), got {bad[0]:,}")


def _check_numbers(s: Settings) -> None:
    for name in ("steps", "stage_steps", "vocab_size"):
        _positive(name, getattr(s, name))
    if not VOCAB_RANGE[0] <= s.vocab_size <= VOCAB_RANGE[1]:
        raise UsageError(f"--vocab-size must lie in {VOCAB_RANGE[0]}..{VOCAB_RANGE[1]} (the 256 bytes and BOS at least; "
                         f"ids are stored as uint16), got {s.vocab_size:,}")
    _check_seeds("--order-seed", [s.order_seed], SEED_MAX)
    _check_seeds("--grid-seed", [s.grid_seed], GRID_SEED_MAX)
    if s.order_seeds:
        _check_seeds("--order-seeds", s.order_seeds, SEED_MAX)
    s.train.check()
    if s.compile not in COMPILE_MODES:
        raise UsageError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {s.compile!r}")
    if s.memory_budget is not None and not s.memory_budget > 0:
        raise UsageError(f"--memory-budget must be a positive number of GiB, got {s.memory_budget}")
    if s.plateau_delta < 0:
        raise UsageError(f"--plateau-delta must not be negative, got {s.plateau_delta}")
    layout = Layout(s.document_order, s.order_seed, s.splits)  # refuses an unknown order or split
    if s.order_seeds is not None:
        if not s.order_seeds or len(set(s.order_seeds)) != len(s.order_seeds):
            raise UsageError(f"--order-seeds must be distinct integers, got {s.order_seeds}")
        if layout.order == "as-is":
            raise UsageError("--order-seeds reshuffle the training documents; a corpus kept --document-order as-is "
                             "has no other order (drop --order-seeds, or use the shuffled order)")


def _checked_twins(s: Settings) -> Settings:
    """Fixed-pool twins: the flag absent or given without names means none or every arm; the
    stream's own settings are refused on other stages."""
    twins = s.fixed_pool_controls
    if twins is None or twins == []:
        s = replace(s, fixed_pool_controls=twins == [])
    elif not isinstance(twins, bool) and not (isinstance(twins, list) and all(isinstance(a, str) for a in twins)):
        raise UsageError(f"fixed_pool_controls must be true, false or a list of arm names, got {twins!r}")
    if not s.stage.is_stream:
        for name in ("fixed_pool_controls", "matched_statics", "claims"):
            if getattr(s, name):
                raise UsageError(f"{name.replace('_', '-')} applies to a stream, not to {s.stage}")
    return s


def _check_limits(s: Settings) -> None:
    for name in ("token_limits", "stream_token_caps"):
        values = getattr(s, name)
        if values is not None and (not values or min(values) <= 0):
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {values}")
    if s.stream_token_caps and sorted(set(s.stream_token_caps)) != s.stream_token_caps:
        raise UsageError(f"--stream-token-caps must increase strictly, got {s.stream_token_caps}")
    if s.stage.is_stream and s.stream_token_caps is not None and len(s.stream_token_caps) < 2:
        raise UsageError(f"a stream needs at least 2 --stream-token-caps (it follows the arms as the data grows), got "
                         f"{s.stream_token_caps}; one token limit is a screen's")
    if s.stage is Stage.PROBE:
        if not s.token_limits or len(s.token_limits) < 3 or sorted(set(s.token_limits)) != s.token_limits:
            raise UsageError(f"probe needs at least 3 increasing --token-limits (its nested caps), got {s.token_limits}")
    if s.stage is Stage.MAP:
        if not s.token_limits or sorted(set(s.token_limits)) != s.token_limits:
            raise UsageError(f"map needs increasing --token-limits (its unique-token pools), got {s.token_limits}")
        cells = sum(len(s.pass_counts(n)) for n in s.token_limits)
        if cells < 2:
            raise UsageError(f"a map of one cell ({s.token_limits[0]:,} tokens x {s.pass_counts()[0]:g} passes) has no "
                             "pressure to map: give more --token-limits or --passes")
        for n in s.token_limits:
            ends = [s.steps_at(k, n) for k in s.pass_counts(n)]
            if len(set(ends)) != len(ends):
                raise UsageError(f"--passes {' '.join(f'{k:g}' for k in s.pass_counts(n))} over {n:,} tokens end at steps "
                                 f"{ends}: two counts share a step; use counts further apart or a larger limit")


def _checked_passes(s: Settings) -> Settings:
    """A probe's one pass count (stored as a number, as before); a map's increasing counts, which
    one run per point evaluates in turn only if its learning rate does not depend on the run's
    length: after warm-up, constant (--min-lr-ratio 1), so a shorter run is the longer one cut."""
    if not s.stage.counts_passes:
        return s
    counts = s.passes if isinstance(s.passes, list) else [s.passes] if s.passes is not None else []
    if not counts or min(counts) <= 0 or sorted(set(counts)) != counts:
        raise UsageError(f"{s.stage} needs --passes, {'one positive number' if s.stage is Stage.PROBE else 'increasing positive numbers'}"
                         f" of passes over each token limit (got {s.passes})")
    if s.stage is Stage.PROBE:
        if len(counts) != 1:
            raise UsageError(f"probe takes one --passes (got {len(counts)}); several pass counts make a map: run `map`")
        return replace(s, passes=counts[0])  # as given: a stored probe keeps its fingerprint
    if s.max_tokens_seen is not None and s.max_tokens_seen <= 0:
        raise UsageError(f"--max-tokens-seen must be positive, got {s.max_tokens_seen}")
    if len(counts) > 1 and s.train.min_lr_ratio != 1:
        raise UsageError(f"a map evaluates each point at {len(counts)} pass counts in one run, which stands for shorter "
                         f"runs only if the learning rate does not decay with the run's length: pass --min-lr-ratio 1 "
                         f"(constant after warm-up; got {s.train.min_lr_ratio}), or map one pass count")
    return replace(s, passes=list(counts))


def _check_steps(s: Settings, warmup_given: bool) -> None:
    """No point so long it would not end; a warm-up the user set shorter than what it warms (the
    first segment of a stream). The default warms at most a tenth of any run (trainer.lr_at)."""
    if s.stage.counts_passes:
        runs, what = [s.steps_for(n) for n in s.token_limits], "--passes over the smallest token limit"
    elif s.stage.is_stream:
        runs, what = [s.stage_steps] * len(s.stream_token_caps or [0] * 4), "--stage-steps of the first segment"
    else:
        runs, what = [s.steps], "--steps"
    if sum(runs) > MAX_STEPS:
        raise UsageError(f"a point of {sum(runs):,} steps would not end; at most {MAX_STEPS:,}")
    if warmup_given and s.train.warmup_steps >= min(runs):
        raise UsageError(f"--warmup-steps {s.train.warmup_steps:,} must be shorter than the {min(runs):,} steps it warms "
                         f"({what}); lower it, or leave it out (the default warms at most a tenth of the run)")


def _checked_stream(s: Settings) -> dict | None:
    """A stream's decays parse (each calibrated one's law read once), its claims name known
    arms, and its one model is locked. Returns the laws the calibrated decays follow."""
    calibrations = {**(s.calibrations or {})}
    for text in s.decays:
        if reads_law(text) and text.split(":", 1)[0] not in calibrations:
            path = text.split(":", 2)[2]
            calibrations[text.split(":", 1)[0]] = read_calibration(text) if is_calibrated(text) else (
                read_pressure_law(path) | {"source": path})
    calibrations = calibrations or None
    parse_decays(s.decays, calibrations)
    check_claims(s.claims, None, s.stream_token_caps, s.twinned)  # the arms: once they are known
    if len(s.models) != 1:
        raise UsageError(f"stream locks exactly one model, got {len(s.models)}: {' '.join(s.models)}")
    if not s.specs()[0].alias and not s.lock_from:
        raise UsageError(f"stream needs a locked model: pass --models winner={s.specs()[0].shape} "
                         "or --lock-from CONFIRM_RUN_DIR")
    return calibrations
