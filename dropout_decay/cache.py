"""The token cache: tokenizer, the encoded corpus as one uint16 array, and a manifest tying them.

Layout of `tokens-v{V}-uint16.npy`: every training document, then every validation document,
each preceded by BOS. Validation documents are every `VAL_EVERY`-th document of the corpus,
so the held-out slice spans the whole corpus and no training pool (a prefix of the training
part) ever touches it. The manifest is written last: a build killed midway leaves no cache
that loads.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from . import __version__
from .corpus import Corpus, load_corpus
from .errors import UsageError
from .files import atomic_write, sha256_file, write_json
from .tokenizer import DEFAULT_VOCAB, bos_id, train_tokenizer

DEFAULT_CACHE_DIR = ".cache/dropout_decay"
VAL_EVERY = 10  # document i is validation when i % VAL_EVERY == VAL_EVERY - 1
ENCODE_CHUNK = 32  # documents per encode call: progress granularity


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
class TokenCache:
    paths: CachePaths
    manifest: dict
    tokens: np.ndarray  # read-only memmap

    @property
    def n_train(self) -> int:
        return self.manifest["train_tokens"]

    @property
    def val(self) -> np.ndarray:
        return self.tokens[self.n_train :]

    def train_pool(self, limit: int | None = None) -> np.ndarray:
        """The first `limit` training tokens (all of them when None): a view, never a copy."""
        if limit is None:
            return self.tokens[: self.n_train]
        if limit <= 0:
            raise UsageError(f"token limit must be positive, got {limit}")
        if limit > self.n_train:
            raise UsageError(
                f"token limit {limit:,} exceeds the {self.n_train:,} training tokens in {self.paths.tokens}"
            )
        return self.tokens[:limit]

    def tokenizer(self) -> Tokenizer:
        return Tokenizer.from_file(str(self.paths.tokenizer))


def split_documents(n_docs: int) -> tuple[list[int], list[int]]:
    val = [i for i in range(n_docs) if i % VAL_EVERY == VAL_EVERY - 1] or [n_docs - 1]
    held = set(val)
    return [i for i in range(n_docs) if i not in held], val


def encode_documents(tok: Tokenizer, docs: list[str], label: str = "encode") -> np.ndarray:
    """BOS + ids of each document, concatenated into one uint16 array."""
    bos = bos_id(tok)
    parts: list[np.ndarray] = []
    t0 = time.perf_counter()
    for start in range(0, len(docs), ENCODE_CHUNK):
        for enc in tok.encode_batch_fast(docs[start : start + ENCODE_CHUNK], add_special_tokens=False):
            parts.append(np.array([bos], dtype=np.uint16))
            parts.append(np.array(enc.ids, dtype=np.uint16))
        done = min(start + ENCODE_CHUNK, len(docs))
        log(f"{label}: {done}/{len(docs)} documents ({time.perf_counter() - t0:.1f}s)")
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint16)


def build_cache(
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    vocab_size: int = DEFAULT_VOCAB,
    corpus: Corpus | None = None,
) -> TokenCache:
    """Train the tokenizer on the training documents, encode everything, write the three files."""
    if not 256 + 1 < vocab_size <= 65536:
        raise UsageError(f"vocab size {vocab_size} must be in 258..65536 so ids fit uint16")
    corpus = corpus or load_corpus()
    paths = CachePaths(Path(cache_dir), vocab_size)
    train_idx, val_idx = split_documents(len(corpus.documents))
    train_docs = [corpus.documents[i] for i in train_idx]
    val_docs = [corpus.documents[i] for i in val_idx]

    t0 = time.perf_counter()
    log(f"tokenizer: training byte-level BPE, vocab {vocab_size}, on {len(train_docs)} documents "
        f"({sum(map(len, train_docs)) / 1e6:.1f}M chars) of {corpus.source}")
    tok = train_tokenizer(train_docs, vocab_size)
    if tok.get_vocab_size() > 65536:
        raise UsageError(f"tokenizer has {tok.get_vocab_size()} ids, more than uint16 holds")
    log(f"tokenizer: done in {time.perf_counter() - t0:.1f}s, {tok.get_vocab_size()} ids")

    train = encode_documents(tok, train_docs, "encode train")
    val = encode_documents(tok, val_docs, "encode val")
    tokens = np.concatenate([train, val])

    paths.manifest.unlink(missing_ok=True)  # the cache is invalid until the new manifest lands
    atomic_write(paths.tokenizer, lambda f: f.write(tok.to_str()))
    atomic_write(paths.tokens, lambda f: np.save(f, tokens), mode="wb")
    manifest = {
        "format": 1,
        "created_by": f"dropout-decay {__version__}",
        "corpus": {
            "source": corpus.source,
            "sha256": corpus.sha256,
            "files": [{"name": n, "sha256": d} for n, d in zip(corpus.names, corpus.file_sha256)],
            "documents": len(corpus.documents),
            "chars": corpus.chars,
        },
        "vocab_size": vocab_size,
        "bos_id": bos_id(tok),
        "tokenizer_file": paths.tokenizer.name,
        "tokenizer_sha256": sha256_file(paths.tokenizer),
        "tokens_file": paths.tokens.name,
        "dtype": "uint16",
        "token_count": int(tokens.size),
        "train_tokens": int(train.size),
        "val_tokens": int(val.size),
        "train_documents": len(train_docs),
        "val_documents": len(val_docs),
        "val_rule": f"document i is validation when i % {VAL_EVERY} == {VAL_EVERY - 1}",
    }
    write_json(paths.manifest, manifest)
    log(f"cache: {tokens.size:,} tokens ({train.size:,} train, {val.size:,} val) in {paths.dir} "
        f"after {time.perf_counter() - t0:.1f}s")
    return load_cache(cache_dir, vocab_size)


def load_cache(cache_dir: str | Path = DEFAULT_CACHE_DIR, vocab_size: int = DEFAULT_VOCAB) -> TokenCache:
    """Open a cache, refusing one that is missing, from another tokenizer, truncated or mistyped."""
    paths = CachePaths(Path(cache_dir), vocab_size)
    for p in (paths.manifest, paths.tokenizer, paths.tokens):
        if not p.is_file():
            raise UsageError(f"no token cache for vocab {vocab_size} in {paths.dir}: {p.name} is missing "
                             "(build one with --corpus/--corpus-glob, or drop --use-cached-data)")
    try:
        manifest = json.loads(paths.manifest.read_text())
        expected = (manifest["tokenizer_sha256"], manifest["token_count"], manifest["train_tokens"])
    except (ValueError, KeyError):
        raise UsageError(f"{paths.manifest} is not a dropout-decay cache manifest") from None
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
    if not 0 < expected[2] < tokens.size:
        raise UsageError(f"{paths.manifest} has an impossible train/val split")
    return TokenCache(paths=paths, manifest=manifest, tokens=tokens)


def prepare_cache(
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    vocab_size: int = DEFAULT_VOCAB,
    use_cached: bool = False,
    corpus: str | None = None,
    corpus_glob: str | None = None,
) -> TokenCache:
    """What every run calls: reuse (`--use-cached-data`), or build from the corpus unless the
    cache already holds exactly this corpus with this vocab."""
    if use_cached:
        if corpus or corpus_glob:
            raise UsageError("--use-cached-data reuses a cache; it cannot be combined with --corpus/--corpus-glob")
        return load_cache(cache_dir, vocab_size)
    text = load_corpus(corpus, corpus_glob)
    try:
        cache = load_cache(cache_dir, vocab_size)
        if cache.manifest["corpus"]["sha256"] == text.sha256:
            log(f"cache: reusing {cache.paths.tokens} ({cache.tokens.size:,} tokens, same corpus)")
            return cache
    except UsageError:
        pass
    return build_cache(cache_dir, vocab_size, text)
