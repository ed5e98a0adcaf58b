"""What every run calls for its data: reuse a cache that holds exactly the asked-for corpus,
layout and vocabulary, or build one. Above both `cache` (reading) and `build` (writing)."""

from __future__ import annotations

from ..common import UsageError, log
from .build import build_cache, identity_for, identity_of
from .cache import DataSource, TokenCache, load_cache
from .corpus import load_corpus


def prepare_cache(source: DataSource) -> TokenCache:
    """What every run calls: reuse (`--use-cached-data`, which must hold the asked-for layout),
    or build from the corpus unless the cache already holds exactly this corpus, layout and vocab."""
    if source.use_cached:
        if source.corpus or source.corpus_glob:
            raise UsageError("--use-cached-data reuses a cache; it cannot be combined with --corpus/--corpus-glob")
        cache = load_cache(source.cache_dir, source.vocab_size)
        if cache.layout != source.layout:
            raise UsageError(f"the cache in {source.cache_dir} holds documents {cache.layout.words()}, not "
                             f"{source.layout.words()}: pass the matching --document-order/--order-seed, or drop "
                             "--use-cached-data to rebuild it")
        return cache
    corpus = load_corpus(source.corpus, source.corpus_glob, source.text_field)
    try:
        cache = load_cache(source.cache_dir, source.vocab_size)
    except UsageError:
        cache = None
    if cache is not None:
        if identity_of(cache.manifest) == identity_for(corpus, source.layout):
            log(f"cache: reusing {cache.paths.tokens} ({cache.tokens.size:,} tokens, same corpus and layout)")
            return cache
        log(f"cache: {cache.paths.dir} holds other data (corpus, layout or tokenizer sample differ); rebuilding")
    return build_cache(source.cache_dir, source.vocab_size, corpus, source.layout)
