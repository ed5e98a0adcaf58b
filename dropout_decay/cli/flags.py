"""The command-line flags of a stage: the seed's flags plus the documented knobs behind them.
Each flag is named after the setting it fills (settings.py), so a flag, a stage file's key and a
stored setting are one name."""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..common import Stage
from ..data import ORDERS, SPLITS
from ..design import Settings, applies, check
from ..model import MASK_FORMS
from ..training import TrainConfig


class _Group:
    """An argument group that leaves out the flags its stage would ignore, so a stage's help lists
    only what it reads and argparse refuses the rest (parsing.py names where they belong)."""

    def __init__(self, group, stage: str | None):
        self.group, self.stage = group, stage

    def add_argument(self, flag: str, **kw) -> None:
        if applies(flag, self.stage):
            self.group.add_argument(flag, **kw)


def add_data_flags(ap: argparse.ArgumentParser) -> None:
    """Where the tokens come from and how the documents are split: every command that builds a cache."""
    d = Settings(stage=Stage.SCREEN)
    g = ap.add_argument_group("data")
    g.add_argument("--use-cached-data", action="store_true", help="reuse the cache in --cache-dir; fail if missing or inconsistent")
    g.add_argument("--cache-dir", default=d.cache_dir, help=f"token cache folder (default {d.cache_dir})")
    g.add_argument("--corpus", help="build the cache from a file or a folder of .txt/.md/.jsonl/.parquet (or gzipped text) files")
    g.add_argument("--corpus-glob", help="build the cache from the files a glob matches (e.g. '~/.cache/nanochat/base_data/*.parquet')")
    g.add_argument("--text-field", default=d.text_field, help=f"the text field of .jsonl rows and .parquet columns (default {d.text_field})")
    g.add_argument("--document-order", default=d.document_order, choices=ORDERS,
                   help="shuffled (default): every token limit is a uniform random subset of documents; as-is keeps the source order")
    g.add_argument("--order-seed", type=int, default=d.order_seed, help=f"seed of the document shuffle and split (default {d.order_seed})")
    g.add_argument("--splits", default=d.splits, choices=SPLITS,
                   help="train-val-test (default): test documents no decision sees judge the stream; train-val: the layout of 0.3")
    g.add_argument("--order-seeds", nargs="+", type=int,
                   help="a grid factor: the training documents in each seed's shuffle (split, tokenizer, validation and test unchanged)")
    g.add_argument("--vocab-size", type=int, default=d.vocab_size, help=f"BPE vocabulary (default {d.vocab_size})")


def add_stage_flags(ap: argparse.ArgumentParser, stage: str | None = None) -> None:
    """The flags of one stage (None: of any stage, as the seed's run_experiments.py takes them)."""
    d, t = Settings(stage=Stage.SCREEN), TrainConfig()
    add_data_flags(ap)
    g = _Group(ap.add_argument_group("grid"), stage)
    g.add_argument("--models", nargs="+", metavar="SPEC", default=d.models,
                   help="DEPTHxHEADSxWIDTH, optionally alias=SPEC (stream: exactly one, locked as winner=SPEC)")
    g.add_argument("--seeds", nargs="+", type=int, help="seeds (screen default 1 2; confirm exactly 3; probe, stream 1 2 3)")
    g.add_argument("--token-limits", nargs="+", type=int,
                   help="screen/confirm: train on the first N training tokens (default all); probe: its nested caps")
    g.add_argument("--dropout-rates", nargs="+", type=float,
                   help="static rates in [0,1) (static sweeps default: the seed's nine; stream: 0 0.10 0.14 0.20)")
    g.add_argument("--steps", type=int, default=d.steps, help=f"screen/confirm: optimiser steps per point (default {d.steps})")
    g.add_argument("--passes", nargs="+", type=float,
                   help="probe: passes over each token limit, its steps following from the limit; map: the pass counts "
                        "each point is evaluated at (with --min-lr-ratio 1)")
    g.add_argument("--max-tokens-seen", type=int,
                   help="map: a point trains at most this many tokens, so the largest limits stop at fewer passes")
    g.add_argument("--stream-token-caps", nargs="+", type=int,
                   help="stream: the growing caps, one segment each (default: 4 doubling caps ending at all training tokens)")
    g.add_argument("--decays", nargs="+", default=d.decays, metavar="NAME:START:END:SHAPE[:UNTIL]",
                   help="stream: decay arms; SHAPE is cosine, linear, exponential or step; NAME:calibrated:PROBE_JSON follows a probe's law")
    g.add_argument("--stage-steps", type=int, default=d.stage_steps, help=f"stream: steps per segment (default {d.stage_steps})")
    g.add_argument("--lock-from", help="stream: lock the model chosen by this confirm run's model_selection.json")
    g.add_argument("--fixed-pool-controls", nargs="*", metavar="ARM",
                   help="stream: every arm (or only the ARMs named) also as ARM@fixed, the same schedule on the final "
                        "cap from step 0")
    g.add_argument("--matched-statics", action="store_true", help="stream: a static arm at each decay's time-averaged rate")
    g = _Group(ap.add_argument_group("training"), stage)
    g.add_argument("--batch-size", type=int, default=t.batch_size, help=f"sequences per step (default {t.batch_size})")
    g.add_argument("--seq-len", type=int, default=t.seq_len, help=f"tokens per sequence (default {t.seq_len})")
    g.add_argument("--lr", type=float, default=t.lr, help=f"AdamW peak learning rate (default {t.lr})")
    g.add_argument("--min-lr-ratio", type=float, default=t.min_lr_ratio, help=f"cosine floor as a fraction of --lr (default {t.min_lr_ratio})")
    g.add_argument("--warmup-steps", type=int, help=f"linear warmup steps, shorter than the run (default {t.warmup_steps}, "
                   "at most a tenth of the run)")
    g.add_argument("--weight-decay", type=float, default=t.weight_decay, help="AdamW weight decay (default 0: dropout is the only regulariser)")
    g.add_argument("--grad-clip", type=float, default=t.grad_clip, help=f"gradient norm clip, 0 for none (default {t.grad_clip})")
    g.add_argument("--eval-batches", type=int, default=t.eval_batches, help=f"fixed batches per loss evaluation (default {t.eval_batches})")
    g.add_argument("--eval-every", type=int, default=t.eval_every, help=f"intermediate evaluation interval in steps, 0 for segment ends only (default {t.eval_every})")
    g.add_argument("--dropout-masks", type=int, default=t.dropout_masks,
                   help=f"how dropout masks are drawn on a CPU, {' or '.join(map(str, MASK_FORMS))}: same statistics, "
                        f"different bits (default {t.dropout_masks}; 1 reproduces runs of 0.2)")
    g.add_argument("--micro-batch", type=int, help="sequences per forward and backward, gradients accumulated over the "
                   "batch: the same step in less memory (default: the whole batch)")
    g.add_argument("--memory-budget", type=float, metavar="GIB",
                   help="GiB a training step may take: each model gets the largest micro-batch that fits (dry run shows it)")
    g.add_argument("--log-every", type=int, default=t.log_every, help=f"training-loss trace interval, the only device sync (default {t.log_every})")
    g.add_argument("--plateau-delta", type=float, default=d.plateau_delta,
                   help=f"model selection: rates within this of the best val loss form the plateau (default {d.plateau_delta})")
    g.add_argument("--device", default=d.device, help="mps (default, required for compliant runs); cpu or cuda only by explicit choice")
    g.add_argument("--grid-seed", type=int, default=d.grid_seed, help="order in which grid points are visited (default 0)")


def settings_from_args(stage: str, args: argparse.Namespace) -> Settings:
    given = vars(args)
    names = {f.name for f in fields(Settings)} - {"stage", "train", "calibrations"}
    unset = {"warmup_steps"} if given.get("warmup_steps") is None else set()  # its default adapts to the run
    train = TrainConfig(**{f.name: given[f.name] for f in fields(TrainConfig) if f.name in given and f.name not in unset})
    settings = Settings(stage=stage, train=train, **{k: v for k, v in given.items() if k in names})
    return check(settings, explicit={"warmup_steps"} - unset)
