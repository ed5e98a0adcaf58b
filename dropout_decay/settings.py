"""Every setting that shapes a stage's grid and results, its flags, and its validation.

One parser serves `python -m dropout_decay.study`, `scripts/run_experiments.py` and the stage
files under `studies/`, so a flag means the same everywhere. Validation happens before any
study or output file exists: bad input costs one line on stderr and nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .cache import DEFAULT_CACHE_DIR
from .errors import UsageError
from .model import parse_model_spec
from .schedules import check_rate, parse_decays
from .tokenizer import DEFAULT_VOCAB
from .train import TrainConfig

STAGES = ("screen", "confirm", "stream")
SEED_RATES = [0.0, 0.02, 0.05, 0.08, 0.10, 0.14, 0.20, 0.30, 0.50]
STREAM_RATES = [0.0, 0.10, 0.14, 0.20]
SEED_DECAYS = ["decay_030_to_014:0.30:0.14:cosine", "decay_020_to_010:0.20:0.10:cosine"]
STUDIES_DIR = Path(__file__).resolve().parents[1] / "studies"
_TRAIN_DEFAULTS = TrainConfig()


@dataclass
class Settings:
    stage: str
    models: list[str] = field(default_factory=lambda: ["8x8x256", "12x8x384", "16x8x384"])
    seeds: list[int] | None = None  # screen: 1 2; confirm and stream: 1 2 3
    dropout_rates: list[float] | None = None  # screen/confirm: the seed's nine; stream: 0 .10 .14 .20
    token_limits: list[int] | None = None  # screen/confirm; None: every training token
    steps: int = 2000
    stream_token_caps: list[int] | None = None  # None: four doubling caps ending at every training token
    decays: list[str] = field(default_factory=lambda: list(SEED_DECAYS))
    stage_steps: int = 1000
    batch_size: int = _TRAIN_DEFAULTS.batch_size
    seq_len: int = _TRAIN_DEFAULTS.seq_len
    lr: float = _TRAIN_DEFAULTS.lr
    min_lr_ratio: float = _TRAIN_DEFAULTS.min_lr_ratio
    warmup_steps: int = _TRAIN_DEFAULTS.warmup_steps
    weight_decay: float = _TRAIN_DEFAULTS.weight_decay
    grad_clip: float = _TRAIN_DEFAULTS.grad_clip
    eval_batches: int = _TRAIN_DEFAULTS.eval_batches
    eval_every: int = _TRAIN_DEFAULTS.eval_every
    log_every: int = _TRAIN_DEFAULTS.log_every
    plateau_delta: float = 0.01
    vocab_size: int = DEFAULT_VOCAB
    cache_dir: str = DEFAULT_CACHE_DIR
    use_cached_data: bool = False
    corpus: str | None = None
    corpus_glob: str | None = None
    device: str = "mps"
    grid_seed: int = 0
    lock_from: str | None = None  # stream: a confirm run whose selection names the locked model

    def train_config(self) -> TrainConfig:
        names = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in asdict(self).items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def fingerprint(self, data_identity: dict) -> str:
        """What makes two runs the same experiment: every result-shaping setting and the data,
        not where the cache or corpus happens to lie."""
        shaping = {k: v for k, v in self.to_dict().items()
                   if k not in ("cache_dir", "use_cached_data", "corpus", "corpus_glob", "lock_from")}
        blob = json.dumps({"settings": shaping, "data": data_identity}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def validate(s: Settings) -> Settings:
    """Fill stage defaults and check everything that needs no data; raise UsageError on the first problem."""
    if s.stage not in STAGES:
        raise UsageError(f"unknown stage {s.stage!r} (choose from {', '.join(STAGES)})")
    specs = [parse_model_spec(m) for m in s.models]
    labels = [m.label for m in specs]
    if len(set(labels)) != len(labels):
        raise UsageError(f"model labels repeat: {' '.join(s.models)}")
    if s.seeds is None:
        s.seeds = [1, 2] if s.stage == "screen" else [1, 2, 3]
    if not s.seeds or len(set(s.seeds)) != len(s.seeds):
        raise UsageError(f"--seeds must be distinct integers, got {s.seeds}")
    if s.stage == "confirm" and len(s.seeds) != 3:
        raise UsageError(f"confirm needs exactly 3 seeds, got {len(s.seeds)}: {' '.join(map(str, s.seeds))}")
    if s.dropout_rates is None:
        s.dropout_rates = list(STREAM_RATES if s.stage == "stream" else SEED_RATES)
    for p in s.dropout_rates:
        check_rate(p)
    if len(set(s.dropout_rates)) != len(s.dropout_rates):
        raise UsageError(f"--dropout-rates repeat a value: {s.dropout_rates}")
    s.dropout_rates = [float(p) for p in s.dropout_rates]
    if s.stage != "stream" and len(s.dropout_rates) < 3:
        raise UsageError("a static sweep needs at least 3 dropout rates to locate an interior optimum")
    for name in ("steps", "stage_steps", "batch_size", "seq_len", "eval_batches", "log_every"):
        if getattr(s, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(s, name)}")
    for name in ("warmup_steps", "eval_every", "weight_decay", "grad_clip", "plateau_delta"):
        if getattr(s, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must not be negative, got {getattr(s, name)}")
    if not s.lr > 0 or not 0 <= s.min_lr_ratio <= 1:
        raise UsageError(f"--lr must be positive and --min-lr-ratio in [0, 1], got {s.lr} and {s.min_lr_ratio}")
    for name in ("token_limits", "stream_token_caps"):
        values = getattr(s, name)
        if values is not None and (not values or min(values) <= 0):
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {values}")
    if s.stream_token_caps and sorted(set(s.stream_token_caps)) != s.stream_token_caps:
        raise UsageError(f"--stream-token-caps must increase strictly, got {s.stream_token_caps}")
    if s.stage == "stream":
        parse_decays(s.decays)
        if len(specs) != 1:
            raise UsageError(f"stream locks exactly one model, got {len(specs)}: {' '.join(s.models)}")
        if not specs[0].alias and not s.lock_from:
            raise UsageError(f"stream needs a locked model: pass --models winner={specs[0].shape} "
                             "or --lock-from CONFIRM_RUN_DIR")
    return s


def add_stage_flags(ap: argparse.ArgumentParser) -> None:
    """The flags of the seed's three commands, plus the documented knobs behind them."""
    d = Settings(stage="screen")
    g = ap.add_argument_group("data")
    g.add_argument("--use-cached-data", action="store_true", help="reuse the cache in --cache-dir; fail if missing or inconsistent")
    g.add_argument("--cache-dir", default=d.cache_dir, help=f"token cache folder (default {d.cache_dir})")
    g.add_argument("--corpus", help="build the cache from a text file or a folder of .txt files")
    g.add_argument("--corpus-glob", help="build the cache from the files a glob matches")
    g.add_argument("--vocab-size", type=int, default=d.vocab_size, help=f"BPE vocabulary (default {d.vocab_size})")
    g = ap.add_argument_group("grid")
    g.add_argument("--models", nargs="+", metavar="SPEC", default=d.models,
                   help="DEPTHxHEADSxWIDTH, optionally alias=SPEC (stream: exactly one, locked as winner=SPEC)")
    g.add_argument("--seeds", nargs="+", type=int, help="seeds (screen default 1 2; confirm exactly 3; stream 1 2 3)")
    g.add_argument("--token-limits", nargs="+", type=int, help="screen/confirm: train on the first N training tokens (default all)")
    g.add_argument("--dropout-rates", nargs="+", type=float,
                   help="static rates in [0,1) (screen/confirm default: the seed's nine; stream: 0 0.10 0.14 0.20)")
    g.add_argument("--steps", type=int, default=d.steps, help=f"screen/confirm: optimiser steps per point (default {d.steps})")
    g.add_argument("--stream-token-caps", nargs="+", type=int,
                   help="stream: the growing caps, one stage each (default: 4 doubling caps ending at all training tokens)")
    g.add_argument("--decays", nargs="+", default=d.decays, metavar="NAME:START:END:SHAPE",
                   help="stream: decay arms; SHAPE is cosine, linear, exponential or step")
    g.add_argument("--stage-steps", type=int, default=d.stage_steps, help=f"stream: steps per stage (default {d.stage_steps})")
    g.add_argument("--lock-from", help="stream: lock the model chosen by this confirm run's model_selection.json")
    g = ap.add_argument_group("training")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"sequences per step (default {d.batch_size})")
    g.add_argument("--seq-len", type=int, default=d.seq_len, help=f"tokens per sequence (default {d.seq_len})")
    g.add_argument("--lr", type=float, default=d.lr, help=f"AdamW peak learning rate (default {d.lr})")
    g.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio, help=f"cosine floor as a fraction of --lr (default {d.min_lr_ratio})")
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help=f"linear warmup, at most 10%% of the run (default {d.warmup_steps})")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay (default 0: dropout is the only regulariser)")
    g.add_argument("--grad-clip", type=float, default=d.grad_clip, help=f"gradient norm clip, 0 for none (default {d.grad_clip})")
    g.add_argument("--eval-batches", type=int, default=d.eval_batches, help=f"fixed batches per loss evaluation (default {d.eval_batches})")
    g.add_argument("--eval-every", type=int, default=d.eval_every, help=f"intermediate evaluation interval in steps, 0 for stage ends only (default {d.eval_every})")
    g.add_argument("--log-every", type=int, default=d.log_every, help=f"training-loss trace interval, the only device sync (default {d.log_every})")
    g.add_argument("--plateau-delta", type=float, default=d.plateau_delta,
                   help=f"model selection: rates within this of the best val loss form the plateau (default {d.plateau_delta})")
    g.add_argument("--device", default=d.device, help="mps (default, required for compliant runs); cpu or cuda only by explicit choice")
    g.add_argument("--grid-seed", type=int, default=d.grid_seed, help="order in which grid points are visited (default 0)")


def settings_from_args(stage: str, args: argparse.Namespace) -> Settings:
    names = {f.name for f in fields(Settings)} - {"stage"}
    return validate(Settings(stage=stage, **{k: v for k, v in vars(args).items() if k in names}))


def load_study_file(name: str) -> dict:
    """A stage file: `studies/NAME.toml` or a path. Keys are flag names with underscores, plus `stage`."""
    path = Path(name)
    if not path.is_file():
        path = STUDIES_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in STUDIES_DIR.glob("*.toml")))
        raise UsageError(f"no study file {name!r} (known: {known})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: {e}") from None
    unknown = set(data) - {f.name for f in fields(Settings)}
    if unknown:
        raise UsageError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    if data.get("stage") not in STAGES:
        raise UsageError(f"{path}: 'stage' must be one of {', '.join(STAGES)}")
    return data
