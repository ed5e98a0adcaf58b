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

from ..common import Stage, UsageError, stage_of
from ..data import DEFAULT_CACHE_DIR, DEFAULT_VOCAB, DataSource, Layout, TokenCache
from ..model import (
    Arm,
    ModelSpec,
    describe_masks,
    regime,
    regime_differences,
    is_twin,
    parse_decays,
    parse_model_spec,
    static,
)
from ..training import Segment, TrainConfig
from .declared import check_claims
from .knobs import SETTINGS, TRAINING, identity, stored_defaults

DEFAULT_STATIC_RATES = [0.0, 0.02, 0.05, 0.08, 0.10, 0.14, 0.20, 0.30, 0.50]
DEFAULT_STREAM_RATES = [0.0, 0.10, 0.14, 0.20]
DEFAULT_DECAYS = ["decay_030_to_014:0.30:0.14:cosine", "decay_020_to_010:0.20:0.10:cosine"]
STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"


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
    passes: float | list[float] | None = None  # probe: passes over each token limit; map: the pass counts evaluated
    max_tokens_seen: int | None = None  # map: a point trains at most this many tokens (larger limits stop at fewer passes)
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
    calibrations: dict | None = None  # stream: the law of each calibrated or pressure decay, read once from its file
    splits: str = "train-val-test"  # train-val: the layout of 0.3, no held-out test documents
    order_seeds: list[int] | None = None  # a grid factor: the training documents in each seed's order
    fixed_pool_controls: bool | list[str] = False  # stream: every arm (or the named ones) also as ARM@fixed
    matched_statics: bool = False  # stream: a static arm at each decay's time-averaged rate
    claims: dict | None = None  # stream: {"primary": [...]}, declared before the first trial (declared.py)
    memory_budget: float | None = None  # GiB a training step may take: picks each model's micro-batch (estimate.py)
    compile: str = "auto"  # auto, on or off: compiled training steps (training/compiled.py); not the study's identity

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

    def pass_counts(self, limit: int | None = None) -> list[float]:
        """Probe and map: the pass counts a point on `limit` tokens is evaluated at, each one a
        cell of the map; a map's larger limits stop at the last count within --max-tokens-seen."""
        counts = [self.passes] if not isinstance(self.passes, list) else list(self.passes)
        if limit is None or self.max_tokens_seen is None:
            return counts
        return counts[:1] + [k for k in counts[1:] if k * limit <= self.max_tokens_seen]

    def steps_at(self, passes: float, limit: int) -> int:
        return max(1, math.ceil(passes * limit / self.tokens_per_step()))

    def limit_segments(self, limit: int) -> list[Segment]:
        """A screen/confirm/probe/map point on the first `limit` tokens: one segment, or in a map
        one per pass count, ending where that many passes end (one run stands for the shorter
        ones because a map's learning rate does not depend on the run's length, checks.py)."""
        if not self.stage.counts_passes:
            return [Segment(limit, self.steps)]
        ends = [self.steps_at(k, limit) for k in self.pass_counts(limit)]
        return [Segment(limit, end - start) for start, end in zip([0] + ends, ends)]

    def steps_for(self, limit: int) -> int:
        """Optimiser steps of a screen/confirm/probe/map point trained on `limit` tokens."""
        return sum(seg.steps for seg in self.limit_segments(limit))

    def segments(self, point: dict) -> list[Segment]:
        if self.stage.is_stream:
            caps = self.stream_token_caps
            if is_twin(point.get("arm", "")):
                caps = [caps[-1]] * len(caps)  # the same steps and schedule, on the final pool throughout
            return [Segment(cap, self.stage_steps) for cap in caps]
        return self.limit_segments(point["tokens"])

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
        check_law_arms(s, cache.manifest)
    return s


def check_law_arms(s: Settings, manifest: dict) -> None:
    """A path gives one rate per cap; a pressure law was fitted in this stream's regime (the
    same tokenizer, corpus, optimiser protocol and dropout; model.pressure.regime)."""
    here = regime(s.to_dict(), manifest, describe_masks(s.train.dropout_masks))
    for d in parse_decays(s.decays, s.calibrations):
        if d.shape == "path":
            d.for_stream(s.stream_token_caps, 1)  # refuses a path of the wrong length
        if d.shape == "pressure":
            differs = regime_differences(d.law["regime"], here)
            if differs:
                raise UsageError(f"pressure arm {d.name}: its law ({d.law.get('source', 'stored')}) was fitted in another "
                                 f"regime than this stream's ({'; '.join(differs)}); fit one in this regime (a map)")


def mean_rates(s: Settings, vocab_size: int) -> dict[str, float]:
    """Each decay's rate averaged over the steps of this stream."""
    n_params = s.specs()[0].n_params(vocab_size)
    steps = [s.stage_steps] * len(s.stream_token_caps)
    return {d.name: d.for_stream(s.stream_token_caps, n_params, s.tokens_per_step(), steps).mean_rate(steps)
            for d in parse_decays(s.decays, s.calibrations)}


def with_matched_statics(s: Settings, vocab_size: int) -> Settings:
    """Add a static arm at each decay's time-averaged rate (to 4 decimals), a control for the
    mean amount of dropout a decay applies."""
    extra = sorted({round(p, 4) for p in mean_rates(s, vocab_size).values()} - set(s.dropout_rates))
    return replace(s, dropout_rates=s.dropout_rates + extra)
