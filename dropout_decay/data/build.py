"""Build a token cache from a corpus of any size in bounded memory, in three streaming passes.

1. scan: count the documents and their characters (and find any unreadable row before a
   single file is written);
2. tokenizer: train byte-level BPE on a seeded sample of the *training* documents, at most
   `TOKENIZER_CHARS` characters (nanochat also trains on a character budget);
3. encode: the tokenizer's parallel batch encoding, streamed to a scratch file in source order;
   then each document is copied to its place in the layout (layout.py) in a memory-mapped .npy.

Memory is bounded by one encode batch, the tokenizer's word counts and the per-document offsets;
the tokens themselves only pass through memory-mapped files.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..common import Progress, UsageError, atomic_write, log, sha256_file, write_json
from .cache import CachePaths, FORMAT, TokenCache, load_cache
from .corpus import Corpus
from .layout import Layout
from .tokenizer import bos_id, train_tokenizer

TOKENIZER_CHARS = 50_000_000  # the tokenizer's training sample, at most (all of a smaller corpus)
BATCH_CHARS = 4_000_000  # characters per parallel encode call
BATCH_DOCS = 4096


def identity_for(corpus: Corpus, layout: Layout) -> dict:
    """What a cache must hold to serve this corpus and layout."""
    d = layout.describe()
    return {"corpus_sha256": corpus.sha256, "text_field": corpus.text_field, "order": d["order"], "seed": d["seed"],
            "splits": layout.splits, "tokenizer_chars": TOKENIZER_CHARS}


def identity_of(manifest: dict) -> dict:
    return {"corpus_sha256": manifest["corpus"]["sha256"], "text_field": manifest["corpus"]["text_field"],
            "order": manifest["layout"]["order"], "seed": manifest["layout"]["seed"],
            "splits": Layout.of(manifest["layout"]).splits, "tokenizer_chars": manifest["tokenizer_sample"]["budget_chars"]}


def scan(corpus: Corpus) -> np.ndarray:
    """Characters of every document, in source order (pass 1)."""
    progress = Progress("scan", len(corpus.files), "files")
    lengths = [len(text) for text in corpus.documents(on_file=lambda i: progress.update(i, f" ({corpus.files[i].name})"))]
    if not lengths:
        raise UsageError(f"corpus {corpus.source} holds no text")
    return np.asarray(lengths, dtype=np.int64)


def sample_for_tokenizer(lengths: np.ndarray, train_ids: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
    """A seeded Bernoulli sample of the training documents of about TOKENIZER_CHARS characters."""
    is_train = np.zeros(lengths.size, dtype=bool)
    is_train[train_ids] = True
    train_chars = int(lengths[is_train].sum())
    rate = min(1.0, TOKENIZER_CHARS / max(train_chars, 1))
    keep = is_train & (np.random.default_rng([seed, 1]).random(lengths.size) < rate)
    return keep, {"budget_chars": TOKENIZER_CHARS, "rate": rate, "seed": seed,
                  "documents": int(keep.sum()), "chars": int(lengths[keep].sum())}


def encode(tok, corpus: Corpus, total_chars: int, scratch: Path) -> tuple[np.ndarray, int]:
    """BOS + ids of every document, appended to `scratch` in source order (pass 3).
    Returns the n+1 offsets of the documents in it and the corpus's size in UTF-8 bytes."""
    bos = bos_id(tok)
    offsets, written, chars, utf8 = [0], 0, 0, 0
    progress = Progress("encode", total_chars, "chars")

    def flush(batch: list[str], out) -> None:
        nonlocal written, chars, utf8
        encodings = tok.encode_batch_fast(batch, add_special_tokens=False)
        sizes = np.fromiter((len(e.ids) + 1 for e in encodings), dtype=np.int64, count=len(encodings))
        buf = np.empty(int(sizes.sum()), dtype=np.uint16)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        buf[starts] = bos
        for start, e in zip(starts, encodings):
            buf[start + 1 : start + 1 + len(e.ids)] = e.ids
        out.write(buf.tobytes())
        offsets.extend((written + np.cumsum(sizes)).tolist())
        written += buf.size
        chars += sum(map(len, batch))
        utf8 += sum(len(text.encode("utf-8")) for text in batch)
        progress.update(chars, f", {written / max(time.perf_counter() - progress.start, 1e-9) / 1e6:.2f}M tokens/s")

    with open(scratch, "wb") as out:
        batch, size = [], 0
        for text in corpus.documents():
            batch.append(text)
            size += len(text)
            if size >= BATCH_CHARS or len(batch) >= BATCH_DOCS:
                flush(batch, out)
                batch, size = [], 0
        if batch:
            flush(batch, out)
    progress.update(chars, f", {written:,} tokens", force=True)
    return np.asarray(offsets, dtype=np.int64), utf8


def assemble(scratch: Path, offsets: np.ndarray, order: np.ndarray, target: Path) -> None:
    """Copy each document from the scratch file to its place in `order`, into a new .npy at `target`."""
    sizes = offsets[1:] - offsets[:-1]
    raw = np.memmap(scratch, dtype=np.uint16, mode="r")
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint16, shape=(int(sizes.sum()),))
        pos = 0
        for doc in order:
            n = int(sizes[doc])
            out[pos : pos + n] = raw[offsets[doc] : offsets[doc] + n]
            pos += n
        out.flush()
        del out
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        del raw
        tmp.unlink(missing_ok=True)


def difficulty(train: np.ndarray, vocab_size: int, utf8_bytes: int, chars: int, tokens: int) -> dict:
    """How hard the corpus is to model, measured once: bytes and characters per token (BOS
    included) and the entropy of the training tokens' unigram distribution in bits."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, train.size, 1 << 24):  # bounded memory at any size
        counts += np.bincount(train[start : start + (1 << 24)], minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return {"bytes_per_token": utf8_bytes / tokens, "chars_per_token": chars / tokens,
            "unigram_entropy_bits": float(-(p * np.log2(p)).sum())}


def _manifest(corpus: Corpus, layout: Layout, sample: dict, vocab_size: int, tok, paths: CachePaths, lengths,
              ids: tuple, counts: tuple[int, int, int], hardness: dict) -> dict:
    """What the cache holds and how it was made: the manifest that lands last (see load_cache)."""
    train_ids, val_ids, test_ids = ids
    n_train, n_val, n_test = counts
    return {
        "format": FORMAT,
        "created_by": f"dropout-decay {__version__}",
        "corpus": {"source": corpus.source, "sha256": corpus.sha256, "text_field": corpus.text_field,
                   "cleaning": corpus.cleaning, "documents": int(lengths.size), "chars": int(lengths.sum()),
                   "files": [{"name": n, "sha256": d} for n, d in zip(corpus.names, corpus.file_sha256)]},
        "layout": layout.describe(),
        "tokenizer_sample": sample,
        "vocab_size": vocab_size,
        "bos_id": bos_id(tok),
        "tokenizer_file": paths.tokenizer.name,
        "tokenizer_sha256": sha256_file(paths.tokenizer),
        "tokens_file": paths.tokens.name,
        "dtype": "uint16",
        "token_count": n_train + n_val + n_test,
        "train_tokens": n_train,
        "val_tokens": n_val,
        "test_tokens": n_test,
        "train_documents": int(train_ids.size),
        "val_documents": int(val_ids.size),
        "test_documents": int(test_ids.size),
        "difficulty": hardness,
    }


def build_cache(cache_dir: str | Path, vocab_size: int, corpus: Corpus, layout: Layout = Layout(),
                timings: dict | None = None) -> TokenCache:
    """Scan, train the tokenizer, encode, lay out; the manifest lands last. `timings`, when
    given, receives the seconds of each pass (scripts/bench_data.py)."""
    timings = {} if timings is None else timings
    if not 256 + 1 < vocab_size <= 65536:
        raise UsageError(f"vocab size {vocab_size} must be in 258..65536 so ids fit uint16")
    paths = CachePaths(Path(cache_dir), vocab_size)
    t0 = time.perf_counter()
    lengths = scan(corpus)
    timings["scan"] = time.perf_counter() - t0
    train_ids, val_ids, test_ids = layout.split(lengths.size)
    keep, sample = sample_for_tokenizer(lengths, train_ids, layout.seed)
    log(f"tokenizer: training byte-level BPE, vocab {vocab_size}, on {sample['documents']:,} of {train_ids.size:,} "
        f"training documents ({sample['chars'] / 1e6:.1f}M chars) of {corpus.source}")
    t1 = time.perf_counter()
    tok = train_tokenizer((text for text, k in zip(corpus.documents(), keep) if k), vocab_size, length=sample["documents"])
    timings["tokenizer"] = time.perf_counter() - t1
    log(f"tokenizer: done in {timings['tokenizer']:.1f}s, {tok.get_vocab_size()} ids")

    paths.dir.mkdir(parents=True, exist_ok=True)
    paths.manifest.unlink(missing_ok=True)  # the cache is invalid until the new manifest lands
    scratch = paths.dir / f".scratch-v{vocab_size}.tmp"
    try:
        t2 = time.perf_counter()
        offsets, utf8_bytes = encode(tok, corpus, int(lengths.sum()), scratch)
        timings["encode"] = time.perf_counter() - t2
        if offsets.size != lengths.size + 1:
            raise UsageError(f"corpus {corpus.source} changed while it was being read; build again")
        atomic_write(paths.tokenizer, lambda f: f.write(tok.to_str()))
        t3 = time.perf_counter()
        assemble(scratch, offsets, np.concatenate([train_ids, val_ids, test_ids]), paths.tokens)
        timings["assemble"] = time.perf_counter() - t3
    finally:
        scratch.unlink(missing_ok=True)
    sizes = offsets[1:] - offsets[:-1]
    n_train, n_val, n_test = (int(sizes[ids].sum()) for ids in (train_ids, val_ids, test_ids))
    tokens = np.load(paths.tokens, mmap_mode="r")
    write_json(paths.manifest, _manifest(corpus, layout, sample, vocab_size, tok, paths, lengths, (train_ids, val_ids, test_ids),
                                         (n_train, n_val, n_test), difficulty(tokens[:n_train], vocab_size, utf8_bytes,
                                                                              int(lengths.sum()), n_train + n_val + n_test)))
    timings["total"] = time.perf_counter() - t0
    log(f"cache: {n_train + n_val + n_test:,} tokens ({n_train:,} train, {n_val:,} val, {n_test:,} test; documents "
        f"{layout.words()}) in {paths.dir} after {time.perf_counter() - t0:.1f}s")
    return load_cache(cache_dir, vocab_size)
