"""Benchmark the data path on the default corpus, in one run (these machines are noisy).

Prints: whole cache build time, tokenizer training time, and the throughput ratio of our
encode path (chunked, BOS-joined, to uint16) against raw `Tokenizer.encode_batch_fast` on the
same documents, best of `--repeats` alternating runs. Goals: build <= 15 s, ratio >= 0.9.
"""

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropout_decay.cache import build_cache, encode_documents  # noqa: E402
from dropout_decay.corpus import load_corpus  # noqa: E402
from dropout_decay.tokenizer import train_tokenizer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    quiet = contextlib.redirect_stderr(io.StringIO())

    t = time.perf_counter()
    corpus = load_corpus()
    t_read = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as d, quiet:
        t = time.perf_counter()
        cache = build_cache(d, corpus=corpus)
        t_build = time.perf_counter() - t + t_read
        n_tokens = cache.tokens.size
    with quiet:
        t = time.perf_counter()
        tok = train_tokenizer(corpus.documents)
        t_train = time.perf_counter() - t

    docs = corpus.documents
    raw, ours = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        tok.encode_batch_fast(docs, add_special_tokens=False)
        raw.append(time.perf_counter() - t)
        with quiet:
            t = time.perf_counter()
            encode_documents(tok, docs)
            ours.append(time.perf_counter() - t)

    print(f"corpus: {len(docs)} documents, {corpus.chars / 1e6:.1f}M chars, {n_tokens:,} tokens")
    print(f"cache build (read + train + encode + write): {t_build:.2f} s   goal <= 15 s")
    print(f"tokenizer training alone: {t_train:.2f} s")
    print(f"encode raw encode_batch_fast: best {min(raw):.2f} s; ours: best {min(ours):.2f} s")
    print(f"encode ratio (ours/raw throughput): {min(raw) / min(ours):.3f}   goal >= 0.9")


if __name__ == "__main__":
    main()
