"""Every setting that shapes a stage's grid and results, its flags, and its validation.

One parser serves `python -m dropout_decay.study`, `scripts/run_experiments.py` and the stage
files under `studies/`, so a flag means the same everywhere. Settings are frozen: `check`
fills the defaults that need no data and refuses bad input before anything is written;
`resolve` fills the data-dependent ones against the token cache. Both return a new value.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from ..common import Stage, UsageError, check_kinds, stage_of
from ..data import DEFAULT_CACHE_DIR, DEFAULT_VOCAB, DataSource, Layout, TokenCache
from ..model import (
    Arm,
    ModelSpec,
    check_rate,
    is_calibrated,
    is_twin,
    parse_decays,
    parse_model_spec,
    read_calibration,
    static,
)
from ..training import Segment, TrainConfig
from .declared import check_claims
from .knobs import SETTINGS, TRAINING, identity, stored_defaults

DEFAULT_STATIC_RATES = [0.0, 0.02, 0.05, 0.08, 0.10, 0.14, 0.20, 0.30, 0.50]
DEFAULT_STREAM_RATES = [0.0, 0.10, 0.14, 0.20]
DEFAULT_DECAYS = ["decay_030_to_014:0.30:0.14:cosine", "decay_020_to_010:0.20:0.10:cosine"]
STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"
SEED_MAX = 2**63 - 1  # numpy's generators take no negative seed, torch and SQLite none wider than 64 bits
GRID_SEED_MAX = 2**32 - 1  # GridSampler draws its order with numpy's RandomState
VOCAB_RANGE = (258, 65536)  # the 256 bytes and BOS at least; ids stored as uint16
MAX_STEPS = 10**9  # a point of more steps than this would not end


def field_defaults(cls) -> dict:
    """Each field's default value (factories called), keyed by name."""
    out = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


@dataclass(frozen=True)
class Settings:
    stage: Stage
    models: list[str] = field(default_factory=lambda: ["8x8x256", "12x8x384", "16x8x384"])
    seeds: list[int] | None = None  # screen: 1 2; confirm, probe and stream: 1 2 3
    dropout_rates: list[float] | None = None  # static sweeps: DEFAULT_STATIC_RATES; stream: DEFAULT_STREAM_RATES
    token_limits: list[int] | None = None  # screen/confirm/probe; None: every training token
    steps: int = 2000  # screen/confirm
    passes: float | None = None  # probe: passes over each token limit (its steps follow from the limit)
    stream_token_caps: list[int] | None = None  # None: four doubling caps ending at every training token
    decays: list[str] = field(default_factory=lambda: list(DEFAULT_DECAYS))
    stage_steps: int = 1000
    train: TrainConfig = field(default_factory=TrainConfig)
    plateau_delta: float = 0.01
    vocab_size: int = DEFAULT_VOCAB
    cache_dir: str = DEFAULT_CACHE_DIR
    use_cached_data: bool = False
    corpus: str | None = None
    corpus_glob: str | None = None
    document_order: str = "shuffled"
    order_seed: int = 0
    text_field: str = "text"
    device: str = "mps"
    grid_seed: int = 0
    lock_from: str | None = None  # stream: a confirm run whose selection names the locked model
    calibrations: dict | None = None  # stream: the fitted law of each calibrated decay, read once from its probe.json
    splits: str = "train-val-test"  # train-val: the layout of 0.3, no held-out test documents
    order_seeds: list[int] | None = None  # a grid factor: the training documents in each seed's order
    fixed_pool_controls: bool | list[str] = False  # stream: every arm (or the named ones) also as ARM@fixed
    matched_statics: bool = False  # stream: a static arm at each decay's time-averaged rate
    claims: dict | None = None  # stream: {"primary": [...]}, declared before the first trial (declared.py)
    memory_budget: float | None = None  # GiB a training step may take: picks each model's micro-batch (estimate.py)

    def __post_init__(self):
        object.__setattr__(self, "stage", stage_of(self.stage))  # a stored or typed name becomes the type

    def specs(self) -> list[ModelSpec]:
        return [parse_model_spec(m) for m in self.models]

    def arms(self) -> list[Arm]:
        """What a grid point can train: static rates, and in a stream the decays and twins too."""
        statics = [Arm(static(p)) for p in self.dropout_rates]
        if not self.stage.is_stream:
            return statics
        arms = statics + [Arm(d) for d in parse_decays(self.decays, self.calibrations)]
        return arms + [a.twin() for a in arms if self.twinned(a.name)]

    def arm(self, point: dict) -> Arm:
        """The arm a grid point trains (a static sweep's point names its rate)."""
        if "arm" not in point:
            return Arm(static(point["dropout"]))
        return next(a for a in self.arms() if a.name == point["arm"])

    def twinned(self, arm: str) -> bool:
        """Does this stream arm get a fixed-pool twin?"""
        twins = self.fixed_pool_controls
        return twins is True or (isinstance(twins, list) and arm in twins)

    def layout(self) -> Layout:
        return Layout(self.document_order, self.order_seed, self.splits)

    def data_source(self) -> DataSource:
        return DataSource(self.cache_dir, self.vocab_size, self.use_cached_data, self.corpus, self.corpus_glob,
                          self.layout(), self.text_field)

    def tokens_per_step(self) -> int:
        return self.train.batch_size * self.train.seq_len

    def steps_for(self, limit: int) -> int:
        """Optimiser steps of a screen/confirm/probe point trained on `limit` tokens."""
        if self.stage is Stage.PROBE:
            return max(1, math.ceil(self.passes * limit / self.tokens_per_step()))
        return self.steps

    def segments(self, point: dict) -> list[Segment]:
        if self.stage.is_stream:
            caps = self.stream_token_caps
            if is_twin(point.get("arm", "")):
                caps = [caps[-1]] * len(caps)  # the same steps and schedule, on the final pool throughout
            return [Segment(cap, self.stage_steps) for cap in caps]
        return [Segment(point["tokens"], self.steps_for(point["tokens"]))]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, stored: bool = True) -> "Settings":
        """Also reads the flat layout of 0.1, where the training knobs sat beside the others.
        A `stored` config (a study's) lacking a later knob was made before it existed and reads
        as that version ran (knobs.py: form 1 masks, no test split); a file written today gets
        today's defaults."""
        known, knobs = {f.name for f in fields(cls)}, {f.name for f in fields(TrainConfig)}
        legacy, legacy_train = ({}, {}) if not stored else (
            stored_defaults(SETTINGS, field_defaults(cls)), stored_defaults(TRAINING, field_defaults(TrainConfig)))
        train = legacy_train | dict(d.get("train") or {}) | {k: v for k, v in d.items() if k in knobs}
        given = {k: v for k, v in d.items() if k in known and k != "train"}
        return cls(**({k: v for k, v in legacy.items() if k not in d and k != "train"} | given),
                   train=TrainConfig(**{k: v for k, v in train.items() if k in knobs}))

    def fingerprint(self, data_identity: dict) -> str:
        """What makes two runs the same experiment: the knobs knobs.py puts in a study's identity
        and the data, not where the cache or corpus happens to lie."""
        shaping = identity(self.to_dict(), SETTINGS, field_defaults(type(self)))
        shaping["train"] = identity(shaping["train"], TRAINING, field_defaults(TrainConfig))
        blob = json.dumps({"settings": shaping, "data": data_identity}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
        if s.passes is None or not s.passes > 0:
            raise UsageError(f"probe needs --passes, a positive number of passes over each token limit (got {s.passes})")
        if not s.token_limits or len(s.token_limits) < 3 or sorted(set(s.token_limits)) != s.token_limits:
            raise UsageError(f"probe needs at least 3 increasing --token-limits (its nested caps), got {s.token_limits}")


def _check_steps(s: Settings, warmup_given: bool) -> None:
    """No point so long it would not end; a warm-up the user set shorter than what it warms (the
    first segment of a stream). The default warms at most a tenth of any run (trainer.lr_at)."""
    if s.stage is Stage.PROBE:
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
        if is_calibrated(text) and text.split(":", 1)[0] not in calibrations:
            calibrations[text.split(":", 1)[0]] = read_calibration(text)
    calibrations = calibrations or None
    parse_decays(s.decays, calibrations)
    check_claims(s.claims, None, s.stream_token_caps, s.twinned)  # the arms: once they are known
    if len(s.models) != 1:
        raise UsageError(f"stream locks exactly one model, got {len(s.models)}: {' '.join(s.models)}")
    if not s.specs()[0].alias and not s.lock_from:
        raise UsageError(f"stream needs a locked model: pass --models winner={s.specs()[0].shape} "
                         "or --lock-from CONFIRM_RUN_DIR")
    return calibrations


def resolve(s: Settings, cache: TokenCache) -> Settings:
    """Fill the data-dependent defaults and refuse, all at once, limits the cache cannot meet."""
    n = cache.n_train
    if s.stage.is_stream:
        s = replace(s, stream_token_caps=s.stream_token_caps or [n // 8, n // 4, n // 2, n])
        limits, flag = s.stream_token_caps, "--stream-token-caps"
    else:
        s = replace(s, token_limits=s.token_limits or [n])
        limits, flag = s.token_limits, "--token-limits"
    too_big = [x for x in limits if x > n]
    if too_big:
        raise UsageError(f"{flag} {', '.join(f'{x:,}' for x in too_big)} exceed{'s' if len(too_big) == 1 else ''} the "
                         f"{n:,} training tokens of the cache in {cache.paths.dir}: build a larger one with "
                         f"--corpus/--corpus-glob, or ask for at most {n:,}")
    window = s.train.seq_len + 1
    held_out = [cache.val.size] + ([cache.test.size] if cache.layout.has_test else [])
    if min(limits + held_out) < window:
        raise UsageError(f"--seq-len {s.train.seq_len} needs pools of at least {window} tokens; "
                         f"the smallest here has {min(limits + held_out):,}")
    if s.stage.is_stream:
        s = with_matched_statics(s, cache.manifest["vocab_size"]) if s.matched_statics else s
        arms = [a.name for a in s.arms()]
        unknown = [a for a in (s.fixed_pool_controls if isinstance(s.fixed_pool_controls, list) else []) if a not in arms]
        if unknown:
            raise UsageError(f"--fixed-pool-controls names {', '.join(unknown)}, not arms of this stream ({', '.join(arms)})")
        check_claims(s.claims, arms, s.stream_token_caps, s.twinned)
    return s


def mean_rates(s: Settings, vocab_size: int) -> dict[str, float]:
    """Each decay's rate averaged over the steps of this stream."""
    n_params = s.specs()[0].n_params(vocab_size)
    steps = [s.stage_steps] * len(s.stream_token_caps)
    return {d.name: d.for_stream(s.stream_token_caps, n_params).mean_rate(steps)
            for d in parse_decays(s.decays, s.calibrations)}


def with_matched_statics(s: Settings, vocab_size: int) -> Settings:
    """Add a static arm at each decay's time-averaged rate (to 4 decimals), a control for the
    mean amount of dropout a decay applies."""
    extra = sorted({round(p, 4) for p in mean_rates(s, vocab_size).values()} - set(s.dropout_rates))
    return replace(s, dropout_rates=s.dropout_rates + extra)
