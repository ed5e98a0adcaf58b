"""Every setting that shapes a stage's grid and results, its flags, and its validation.

One parser serves `python -m dropout_decay.study`, `scripts/run_experiments.py` and the stage
files under `studies/`, so a flag means the same everywhere. Settings are frozen: `check`
fills the defaults that need no data and refuses bad input before anything is written;
`resolve` fills the data-dependent ones against the token cache. Both return a new value.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..data.cache import DEFAULT_CACHE_DIR, DataSource, TokenCache
from ..common.errors import UsageError
from ..data.layout import ORDERS, Layout
from ..model.masks import LEGACY_MASKS, MASK_FORMS
from ..model.gpt import ModelSpec, parse_model_spec
from ..model.schedules import Schedule, check_rate, is_calibrated, parse_decays, read_calibration, static
from ..data.tokenizer import DEFAULT_VOCAB
from ..training.train import Segment, TrainConfig

STAGES = ("screen", "confirm", "probe", "stream")
DEFAULT_STATIC_RATES = [0.0, 0.02, 0.05, 0.08, 0.10, 0.14, 0.20, 0.30, 0.50]
DEFAULT_STREAM_RATES = [0.0, 0.10, 0.14, 0.20]
DEFAULT_DECAYS = ["decay_030_to_014:0.30:0.14:cosine", "decay_020_to_010:0.20:0.10:cosine"]
STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"
NOT_SHAPING = ("cache_dir", "use_cached_data", "corpus", "corpus_glob", "lock_from")  # where, not what


@dataclass(frozen=True)
class Settings:
    stage: str
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

    def specs(self) -> list[ModelSpec]:
        return [parse_model_spec(m) for m in self.models]

    def arms(self) -> list[Schedule]:
        """The schedules a grid point can use: static rates, and in a stream the decays too."""
        statics = [static(p) for p in self.dropout_rates]
        return statics + (parse_decays(self.decays, self.calibrations) if self.stage == "stream" else [])

    def layout(self) -> Layout:
        return Layout(self.document_order, self.order_seed)

    def data_source(self) -> DataSource:
        return DataSource(self.cache_dir, self.vocab_size, self.use_cached_data, self.corpus, self.corpus_glob,
                          self.layout(), self.text_field)

    def tokens_per_step(self) -> int:
        return self.train.batch_size * self.train.seq_len

    def steps_for(self, limit: int) -> int:
        """Optimiser steps of a screen/confirm/probe point trained on `limit` tokens."""
        if self.stage == "probe":
            return max(1, math.ceil(self.passes * limit / self.tokens_per_step()))
        return self.steps

    def segments(self, point: dict) -> list[Segment]:
        if self.stage == "stream":
            return [Segment(cap, self.stage_steps) for cap in self.stream_token_caps]
        return [Segment(point["tokens"], self.steps_for(point["tokens"]))]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        """Also reads the flat layout of 0.1, where the training knobs sat beside the others,
        and configs from before `dropout_masks`, whose runs drew form 1's masks."""
        known, knobs = {f.name for f in fields(cls)}, {f.name for f in fields(TrainConfig)}
        train = {"dropout_masks": LEGACY_MASKS} | dict(d.get("train") or {}) | {k: v for k, v in d.items() if k in knobs}
        return cls(**{k: v for k, v in d.items() if k in known and k != "train"},
                   train=TrainConfig(**{k: v for k, v in train.items() if k in knobs}))

    def fingerprint(self, data_identity: dict) -> str:
        """What makes two runs the same experiment: every result-shaping setting and the data,
        not where the cache or corpus happens to lie."""
        shaping = {k: v for k, v in self.to_dict().items() if k not in NOT_SHAPING}
        if shaping["train"]["dropout_masks"] == LEGACY_MASKS:  # as before the setting existed
            del shaping["train"]["dropout_masks"]
        blob = json.dumps({"settings": shaping, "data": data_identity}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _positive(name: str, value) -> None:
    if value <= 0:
        raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")


def check(s: Settings) -> Settings:
    """Fill the defaults that need no data and refuse bad input, one problem at a time."""
    if s.stage not in STAGES:
        raise UsageError(f"unknown stage {s.stage!r} (choose from {', '.join(STAGES)})")
    labels = [m.label for m in s.specs()]
    if len(set(labels)) != len(labels):
        raise UsageError(f"model labels repeat: {' '.join(s.models)}")
    seeds = s.seeds if s.seeds is not None else ([1, 2] if s.stage == "screen" else [1, 2, 3])
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds must be distinct integers, got {seeds}")
    if s.stage == "confirm" and len(seeds) != 3:
        raise UsageError(f"confirm needs exactly 3 seeds, got {len(seeds)}: {' '.join(map(str, seeds))}")
    rates = s.dropout_rates if s.dropout_rates is not None else (
        DEFAULT_STREAM_RATES if s.stage == "stream" else DEFAULT_STATIC_RATES)
    rates = [check_rate(p) for p in rates]
    if len(set(rates)) != len(rates):
        raise UsageError(f"--dropout-rates repeat a value: {rates}")
    if s.stage != "stream" and len(rates) < 3:
        raise UsageError("a static sweep needs at least 3 dropout rates to locate an interior optimum")
    for name in ("steps", "stage_steps", "vocab_size"):
        _positive(name, getattr(s, name))
    s.train.check()
    if s.plateau_delta < 0:
        raise UsageError(f"--plateau-delta must not be negative, got {s.plateau_delta}")
    Layout(s.document_order, s.order_seed)
    for name in ("token_limits", "stream_token_caps"):
        values = getattr(s, name)
        if values is not None and (not values or min(values) <= 0):
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {values}")
    if s.stream_token_caps and sorted(set(s.stream_token_caps)) != s.stream_token_caps:
        raise UsageError(f"--stream-token-caps must increase strictly, got {s.stream_token_caps}")
    if s.stage == "probe":
        if s.passes is None or not s.passes > 0:
            raise UsageError(f"probe needs --passes, a positive number of passes over each token limit (got {s.passes})")
        if not s.token_limits or len(s.token_limits) < 3 or sorted(set(s.token_limits)) != s.token_limits:
            raise UsageError(f"probe needs at least 3 increasing --token-limits (its nested caps), got {s.token_limits}")
    calibrations = s.calibrations
    if s.stage == "stream":
        calibrations = {**(s.calibrations or {})}
        for text in s.decays:
            if is_calibrated(text) and text.split(":", 1)[0] not in calibrations:
                calibrations[text.split(":", 1)[0]] = read_calibration(text)
        calibrations = calibrations or None
        parse_decays(s.decays, calibrations)
        if len(s.models) != 1:
            raise UsageError(f"stream locks exactly one model, got {len(s.models)}: {' '.join(s.models)}")
        if not s.specs()[0].alias and not s.lock_from:
            raise UsageError(f"stream needs a locked model: pass --models winner={s.specs()[0].shape} "
                             "or --lock-from CONFIRM_RUN_DIR")
    return replace(s, seeds=list(seeds), dropout_rates=rates, calibrations=calibrations)


def resolve(s: Settings, cache: TokenCache) -> Settings:
    """Fill the data-dependent defaults and refuse, all at once, limits the cache cannot meet."""
    n = cache.n_train
    if s.stage == "stream":
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
    if min(limits) < window or cache.val.size < window:
        raise UsageError(f"--seq-len {s.train.seq_len} needs pools of at least {window} tokens; "
                         f"the smallest here has {min(min(limits), cache.val.size):,}")
    return s


def add_stage_flags(ap: argparse.ArgumentParser) -> None:
    """The flags of the seed's three commands, plus the documented knobs behind them."""
    d, t = Settings(stage="screen"), TrainConfig()
    g = ap.add_argument_group("data")
    g.add_argument("--use-cached-data", action="store_true", help="reuse the cache in --cache-dir; fail if missing or inconsistent")
    g.add_argument("--cache-dir", default=d.cache_dir, help=f"token cache folder (default {d.cache_dir})")
    g.add_argument("--corpus", help="build the cache from a file or a folder of .txt/.md/.jsonl/.parquet (or gzipped text) files")
    g.add_argument("--corpus-glob", help="build the cache from the files a glob matches (e.g. '~/.cache/nanochat/base_data/*.parquet')")
    g.add_argument("--text-field", default=d.text_field, help=f"the text field of .jsonl rows and .parquet columns (default {d.text_field})")
    g.add_argument("--document-order", default=d.document_order, choices=ORDERS,
                   help="shuffled (default): every token limit is a uniform random subset of documents; as-is keeps the source order")
    g.add_argument("--order-seed", type=int, default=d.order_seed, help=f"seed of the document shuffle (default {d.order_seed})")
    g.add_argument("--vocab-size", type=int, default=d.vocab_size, help=f"BPE vocabulary (default {d.vocab_size})")
    g = ap.add_argument_group("grid")
    g.add_argument("--models", nargs="+", metavar="SPEC", default=d.models,
                   help="DEPTHxHEADSxWIDTH, optionally alias=SPEC (stream: exactly one, locked as winner=SPEC)")
    g.add_argument("--seeds", nargs="+", type=int, help="seeds (screen default 1 2; confirm exactly 3; probe, stream 1 2 3)")
    g.add_argument("--token-limits", nargs="+", type=int,
                   help="screen/confirm: train on the first N training tokens (default all); probe: its nested caps")
    g.add_argument("--dropout-rates", nargs="+", type=float,
                   help="static rates in [0,1) (static sweeps default: the seed's nine; stream: 0 0.10 0.14 0.20)")
    g.add_argument("--steps", type=int, default=d.steps, help=f"screen/confirm: optimiser steps per point (default {d.steps})")
    g.add_argument("--passes", type=float, help="probe: passes over each token limit; its steps follow from the limit")
    g.add_argument("--stream-token-caps", nargs="+", type=int,
                   help="stream: the growing caps, one segment each (default: 4 doubling caps ending at all training tokens)")
    g.add_argument("--decays", nargs="+", default=d.decays, metavar="NAME:START:END:SHAPE",
                   help="stream: decay arms; SHAPE is cosine, linear, exponential or step; NAME:calibrated:PROBE_JSON follows a probe's law")
    g.add_argument("--stage-steps", type=int, default=d.stage_steps, help=f"stream: steps per segment (default {d.stage_steps})")
    g.add_argument("--lock-from", help="stream: lock the model chosen by this confirm run's model_selection.json")
    g = ap.add_argument_group("training")
    g.add_argument("--batch-size", type=int, default=t.batch_size, help=f"sequences per step (default {t.batch_size})")
    g.add_argument("--seq-len", type=int, default=t.seq_len, help=f"tokens per sequence (default {t.seq_len})")
    g.add_argument("--lr", type=float, default=t.lr, help=f"AdamW peak learning rate (default {t.lr})")
    g.add_argument("--min-lr-ratio", type=float, default=t.min_lr_ratio, help=f"cosine floor as a fraction of --lr (default {t.min_lr_ratio})")
    g.add_argument("--warmup-steps", type=int, default=t.warmup_steps, help=f"linear warmup, at most 10%% of the run (default {t.warmup_steps})")
    g.add_argument("--weight-decay", type=float, default=t.weight_decay, help="AdamW weight decay (default 0: dropout is the only regulariser)")
    g.add_argument("--grad-clip", type=float, default=t.grad_clip, help=f"gradient norm clip, 0 for none (default {t.grad_clip})")
    g.add_argument("--eval-batches", type=int, default=t.eval_batches, help=f"fixed batches per loss evaluation (default {t.eval_batches})")
    g.add_argument("--eval-every", type=int, default=t.eval_every, help=f"intermediate evaluation interval in steps, 0 for segment ends only (default {t.eval_every})")
    g.add_argument("--dropout-masks", type=int, default=t.dropout_masks,
                   help=f"how dropout masks are drawn on a CPU, {' or '.join(map(str, MASK_FORMS))}: same statistics, "
                        f"different bits (default {t.dropout_masks}; 1 reproduces runs of 0.2)")
    g.add_argument("--log-every", type=int, default=t.log_every, help=f"training-loss trace interval, the only device sync (default {t.log_every})")
    g.add_argument("--plateau-delta", type=float, default=d.plateau_delta,
                   help=f"model selection: rates within this of the best val loss form the plateau (default {d.plateau_delta})")
    g.add_argument("--device", default=d.device, help="mps (default, required for compliant runs); cpu or cuda only by explicit choice")
    g.add_argument("--grid-seed", type=int, default=d.grid_seed, help="order in which grid points are visited (default 0)")


def settings_from_args(stage: str, args: argparse.Namespace) -> Settings:
    given = vars(args)
    names = {f.name for f in fields(Settings)} - {"stage", "train", "calibrations"}
    train = TrainConfig(**{f.name: given[f.name] for f in fields(TrainConfig) if f.name in given})
    return check(Settings(stage=stage, train=train, **{k: v for k, v in given.items() if k in names}))


def file_keys() -> set[str]:
    """Keys a stage file may hold: every flag's name with underscores, and `stage`."""
    return ({f.name for f in fields(Settings)} - {"train", "calibrations"}) | {f.name for f in fields(TrainConfig)}


def read_toml(name: str) -> tuple[Path, dict]:
    """`studies/NAME.toml` or a path, parsed; one line for a missing or malformed file."""
    path = Path(name)
    if not path.is_file():
        path = STUDIES_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in STUDIES_DIR.glob("*.toml")))
        raise UsageError(f"no study file {name!r} (known: {known})")
    try:
        return path, tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: {e}") from None


def load_study_file(name: str) -> dict:
    """A stage file. Keys are flag names with underscores, plus `stage`."""
    path, data = read_toml(name)
    if "workflow" in data or "screen" in data:
        raise UsageError(f"{path} is a workflow; run it with `workflow {name}`")
    unknown = set(data) - file_keys()
    if unknown:
        raise UsageError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    if data.get("stage") not in STAGES:
        raise UsageError(f"{path}: 'stage' must be one of {', '.join(STAGES)}")
    return data
