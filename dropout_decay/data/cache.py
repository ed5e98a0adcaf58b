"""The token cache: tokenizer, the encoded corpus as one uint16 array, and a manifest tying them.

Layout of `tokens-v{V}-uint16.npy`: the training documents, then the validation documents, then
the test documents (none in a cache of 0.3), in the order layout.py lays them out, each preceded
by BOS. A token limit N is the first N tokens: a uniform random subset of training documents
when the order is shuffled; validation and test are never touched by any limit. Another order
seed's pool (`train_pool(limit, order_seed)`) gathers the same training documents in that
seed's order: a copy of at most `limit` tokens. The manifest is written last: a build killed
midway leaves no cache that loads. The manifest records the corpus, its order and seed, and
the tokenizer's sample; a cache is reused only for exactly that data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..common import UsageError, sha256_file
from .layout import Layout
from .tokenizer import DEFAULT_VOCAB

DEFAULT_CACHE_DIR = ".cache/dropout_decay"
FORMAT = 2  # 1: documents in name order, no recorded layout (before 0.2)


@dataclass(frozen=True)
class CachePaths:
    dir: Path
    vocab_size: int

    @property
    def tokenizer(self) -> Path:
        return self.dir / f"tokenizer-v{self.vocab_size}.json"

    @property
    def tokens(self) -> Path:
        return self.dir / f"tokens-v{self.vocab_size}-uint16.npy"

    @property
    def manifest(self) -> Path:
        return self.dir / f"manifest-v{self.vocab_size}.json"


@dataclass(frozen=True)
class DataSource:
    """Which data a run asks for: a cache folder, and the corpus and layout to build it from."""

    cache_dir: str = DEFAULT_CACHE_DIR
    vocab_size: int = DEFAULT_VOCAB
    use_cached: bool = False
    corpus: str | None = None
    corpus_glob: str | None = None
    layout: Layout = field(default_factory=Layout)
    text_field: str = "text"


@dataclass(frozen=True)
class TokenCache:
    paths: CachePaths
    manifest: dict
    tokens: np.ndarray  # read-only memmap

    @property
    def n_train(self) -> int:
        return self.manifest["train_tokens"]

    @property
    def n_val(self) -> int:
        return self.manifest["val_tokens"]

    @property
    def val(self) -> np.ndarray:
        return self.tokens[self.n_train : self.n_train + self.n_val]

    @property
    def test(self) -> np.ndarray:
        """The held-out test documents (empty in a cache of 0.3)."""
        return self.tokens[self.n_train + self.n_val :]

    @property
    def layout(self) -> Layout:
        return Layout.of(self.manifest["layout"])

    def train_pool(self, limit: int | None = None, order_seed: int | None = None) -> np.ndarray:
        """The first `limit` training tokens (all of them when None) with the training documents in
        the order of `order_seed` (default: the cache's own, a view, never a copy)."""
        if limit is not None and limit <= 0:
            raise UsageError(f"token limit must be positive, got {limit}")
        if limit is not None and limit > self.n_train:
            raise UsageError(f"token limit {limit:,} exceeds the {self.n_train:,} training tokens in {self.paths.tokens}")
        limit = self.n_train if limit is None else limit
        if order_seed is None or order_seed == self.layout.seed:
            return self.tokens[:limit]
        return self._reordered(limit, order_seed)

    def _reordered(self, limit: int, order_seed: int) -> np.ndarray:
        train = self.tokens[: self.n_train]
        starts = np.flatnonzero(train == self.manifest["bos_id"])  # every document begins with BOS
        ends = np.append(starts[1:], self.n_train)
        layout, n_docs = self.layout, self.manifest["corpus"]["documents"]
        train_ids = layout.split(n_docs)[0]
        if train_ids.size != starts.size:
            raise UsageError(f"{self.paths.tokens}: {starts.size} training documents, its layout says {train_ids.size}; "
                             "rebuild the cache")
        order = layout.training_order(n_docs, train_ids, order_seed)
        taken = np.searchsorted(np.cumsum(ends[order] - starts[order]), limit) + 1
        return np.concatenate([train[starts[j]:ends[j]] for j in order[:taken]])[:limit]


def load_cache(cache_dir: str | Path = DEFAULT_CACHE_DIR, vocab_size: int = DEFAULT_VOCAB) -> TokenCache:
    """Open a cache, refusing one that is missing, stale, from another tokenizer, truncated or mistyped."""
    paths = CachePaths(Path(cache_dir), vocab_size)
    for p in (paths.manifest, paths.tokenizer, paths.tokens):
        if not p.is_file():
            raise UsageError(f"no token cache for vocab {vocab_size} in {paths.dir}: {p.name} is missing "
                             "(build one with --corpus/--corpus-glob, or drop --use-cached-data)")
    try:
        manifest = json.loads(paths.manifest.read_text())
        expected = (manifest["tokenizer_sha256"], manifest["token_count"], manifest["train_tokens"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{paths.manifest} is not a dropout-decay cache manifest") from None
    if manifest.get("format") != FORMAT:
        raise UsageError(f"the cache in {paths.dir} was built by an older dropout-decay (documents in name order, "
                         "no recorded layout); rebuild it: drop --use-cached-data, or run the `cache` command")
    if manifest.get("vocab_size") != vocab_size:
        raise UsageError(f"{paths.manifest} is for vocab {manifest.get('vocab_size')}, not {vocab_size}")
    if sha256_file(paths.tokenizer) != expected[0]:
        raise UsageError(f"{paths.tokens.name} was encoded by another tokenizer than {paths.tokenizer.name}; "
                         "rebuild the cache")
    try:
        tokens = np.load(paths.tokens, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise UsageError(f"{paths.tokens} is unreadable or truncated ({e})") from None
    if tokens.dtype != np.uint16 or tokens.ndim != 1:
        raise UsageError(f"{paths.tokens} holds {tokens.dtype} with shape {tokens.shape}, expected 1-D uint16")
    if tokens.size != expected[1]:
        raise UsageError(f"{paths.tokens} has {tokens.size:,} tokens, its manifest says {expected[1]:,}: "
                         "truncated or replaced; rebuild the cache")
    if not 0 < expected[2] < tokens.size or not 0 < manifest.get("val_tokens", 0) <= tokens.size - expected[2]:
        raise UsageError(f"{paths.manifest} has an impossible train/val/test split")
    return TokenCache(paths=paths, manifest=manifest, tokens=tokens)
