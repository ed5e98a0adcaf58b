"""What a run was: the configuration stored on its study, from which everything else follows.

`build_config` gathers the resolved settings, the grid, the models, the data's identity and
paths, the environment (interpreter, library versions, git commit), the device compliance and
nanochat's attribution. The study keeps it as a user attr; config.json is a copy.
"""

from __future__ import annotations

import math
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import optuna
import tokenizers
import torch

from .. import NANOCHAT_ATTRIBUTION, __version__
from ..common import UsageError
from ..data import TokenCache
from ..design import Settings
from ..model import describe_masks
from ..training import DeviceChoice
from .cpu import cores
from .grid import search_space

CHECKOUT = Path(__file__).resolve().parents[2]


@cache
def git_commit() -> str | None:
    """The commit this code runs from, `+dirty` when the checkout has changes; None outside git."""
    if not (CHECKOUT / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if head and dirty else head or None


def environment(device: DeviceChoice, threads: int | None = None) -> dict:
    return {
        "python": platform.python_version(), "executable": sys.executable, "argv": list(sys.argv),
        "torch": torch.__version__, "optuna": optuna.__version__, "numpy": np.__version__,
        "tokenizers": tokenizers.__version__, "dropout_decay": __version__, "git_commit": git_commit(),
        "os": platform.platform(), "machine": platform.machine(), "device": device.name,
        "cores": cores(),
        "torch_threads": threads or "the cores shared among this machine's live workers (each trial records its own)",
    }


def data_identity(cache: TokenCache) -> dict:
    """The data a study's results depend on: corpus, layout, tokenizer and token counts."""
    return manifest_identity(cache.manifest)


def manifest_identity(m: dict) -> dict:
    """`data_identity` from a cache's manifest alone (a stored config keeps a copy of it)."""
    return {k: m[k] for k in ("vocab_size", "tokenizer_sha256", "token_count", "train_tokens", "val_tokens")} | {
        "corpus_sha256": m["corpus"]["sha256"], "order": m["layout"]["order"], "order_seed": m["layout"]["seed"]}


def build_config(s: Settings, cache: TokenCache, device: DeviceChoice, command: str, lock: dict | None,
                 threads: int | None = None) -> dict:
    space = search_space(s)
    vocab = cache.manifest["vocab_size"]
    return {
        "stage": s.stage,
        "command": command,
        "settings": s.to_dict(),
        "fingerprint": s.fingerprint(data_identity(cache)),
        "grid": space,
        "grid_size": math.prod(len(v) for v in space.values()),
        "grid_seed": s.grid_seed,
        "models": [{"label": m.label, "shape": m.shape, "depth": m.depth, "heads": m.heads, "width": m.width,
                    "parameters": m.n_params(vocab)} for m in s.specs()],
        "dropout_form": describe_masks(s.train.dropout_masks),
        "data": {"cache_dir": str(Path(s.cache_dir).resolve()), "tokens_file": cache.paths.tokens.name,
                 "tokenizer_file": cache.paths.tokenizer.name, "layout": cache.manifest["layout"],
                 "manifest": cache.manifest},
        "environment": environment(device, threads),
        "compliance": {"device": device.name, "mps_compliant": device.mps_compliant, "note": device.note},
        "lock": lock,
        "code_version": __version__,
        "attribution": NANOCHAT_ATTRIBUTION,
    }


def load_config(study: optuna.Study) -> dict:
    config = study.user_attrs.get("config")
    if not config:
        raise UsageError(f"study {study.study_name} was not made by dropout-decay (no config in its user attrs)")
    return config
