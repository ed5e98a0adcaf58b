"""Benchmark the data path, in one run (these machines are noisy).

1. The default corpus: whole cache build, and our encode path against raw
   `Tokenizer.encode_batch_fast` on the same documents (best of --repeats; goal ratio >= 0.9).
2. Seed scale: a synthetic corpus of >= --tokens tokens (the default corpus repeated, each copy in
   another document order, written as parquet shards like nanochat's), built in a child process:
   tokens/s of the encode pass and of the whole build, and the child's peak RSS. Goals: peak RSS
   <= 2 GiB at 100M tokens, encode >= 1M tokens/s on 2 cores. The copies repeat words, so the
   tokenizer's word cache hits more often than on fresh text: read the throughput as an upper bound.
"""

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropout_decay.data.build import build_cache, encode  # noqa: E402
from dropout_decay.data.corpus import load_corpus  # noqa: E402
from dropout_decay.data.tokenizer import train_tokenizer  # noqa: E402

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from dropout_decay.data.build import build_cache
from dropout_decay.data.corpus import load_corpus
timings = {{}}
cache = build_cache({cache!r}, {vocab}, load_corpus(corpus_glob={glob!r}), timings=timings)
print(json.dumps({{"tokens": int(cache.tokens.size), "timings": timings,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def default_corpus(repeats: int) -> None:
    quiet = contextlib.redirect_stderr(io.StringIO())
    corpus = load_corpus()
    docs = list(corpus.documents())
    with tempfile.TemporaryDirectory() as d, quiet:
        timings = {}
        cache = build_cache(d, 4096, corpus, timings=timings)
        tok = train_tokenizer(docs, 4096)
    raw, ours = [], []
    with tempfile.TemporaryDirectory() as d, quiet:
        for _ in range(repeats):
            t = time.perf_counter()
            tok.encode_batch_fast(docs, add_special_tokens=False)
            raw.append(time.perf_counter() - t)
            t = time.perf_counter()
            encode(tok, corpus, sum(map(len, docs)), Path(d) / "scratch")
            ours.append(time.perf_counter() - t)
    print(f"default corpus: {len(docs)} documents, {sum(map(len, docs)) / 1e6:.1f}M chars, {cache.tokens.size:,} tokens")
    print(f"  cache build {timings['total']:.2f} s (scan {timings['scan']:.2f}, tokenizer {timings['tokenizer']:.2f}, "
          f"encode {timings['encode']:.2f}, assemble {timings['assemble']:.2f})")
    print(f"  encode: raw encode_batch_fast best {min(raw):.2f} s; ours (reading the corpus, BOS, uint16, to disk) "
          f"best {min(ours):.2f} s; ratio ours/raw throughput {min(raw) / min(ours):.3f}   goal >= 0.9")


def synthetic_corpus(folder: Path, tokens: int) -> int:
    """Parquet shards of the default corpus repeated until about `tokens` tokens (4.3 chars each)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = list(load_corpus().documents())
    copies = max(1, round(tokens * 4.3 / sum(map(len, docs))))
    for k in range(copies):
        order = np.random.default_rng(k).permutation(len(docs))
        pq.write_table(pa.table({"text": [docs[i] for i in order]}), folder / f"shard_{k:05d}.parquet", row_group_size=64)
    return copies


def seed_scale(tokens: int, vocab: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        shards = Path(d) / "shards"
        shards.mkdir()
        t = time.perf_counter()
        copies = synthetic_corpus(shards, tokens)
        written = time.perf_counter() - t
        code = CHILD.format(root=str(Path(__file__).resolve().parents[1]), cache=str(Path(d) / "cache"), vocab=vocab,
                            glob=str(shards / "*.parquet"))
        env = dict(os.environ, TOKENIZERS_PARALLELISM="true")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        r = json.loads(out.stdout.strip().splitlines()[-1])
    t = r["timings"]
    print(f"\nseed scale: {copies} parquet shards written in {written:.0f} s; cache of {r['tokens']:,} tokens at vocab {vocab}")
    print(f"  build {t['total']:.1f} s = scan {t['scan']:.1f} + tokenizer {t['tokenizer']:.1f} + encode {t['encode']:.1f} "
          f"+ assemble {t['assemble']:.1f} (+ manifest)")
    print(f"  encode pass {r['tokens'] / t['encode'] / 1e6:.2f}M tokens/s   goal >= 1M tokens/s on 2 cores; "
          f"whole build {r['tokens'] / t['total'] / 1e6:.2f}M tokens/s")
    print(f"  peak RSS of the build: {r['peak_rss_mib']:,.0f} MiB   goal <= 2048 MiB at 100M tokens")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=60_000_000, help="size of the synthetic seed-scale corpus")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--skip-seed-scale", action="store_true")
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores")
    default_corpus(args.repeats)
    if not args.skip_seed_scale:
        seed_scale(args.tokens, args.vocab_size)


if __name__ == "__main__":
    main()
