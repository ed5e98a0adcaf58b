"""Choosing a cache (data/prepare.py): another corpus or order is never served from a cache."""


import pytest

from dropout_decay.common.errors import UsageError
from dropout_decay.data.cache import CachePaths, DataSource
from dropout_decay.data.layout import Layout
from dropout_decay.data.prepare import prepare_cache
from tests.conftest import TEST_VOCAB
from tests.data.corpora import VOCAB, documents_of, index_of, numbered_corpus


def test_a_different_corpus_or_order_is_never_served_from_a_cache(tmp_path, corpus_dir, capsys):
    cache_dir = tmp_path / "cache"
    prepare_cache(DataSource(str(cache_dir), VOCAB, corpus=str(corpus_dir)))
    tokens = CachePaths(cache_dir, VOCAB).tokens
    before = tokens.stat().st_mtime_ns
    prepare_cache(DataSource(str(cache_dir), VOCAB, corpus=str(corpus_dir)))
    assert tokens.stat().st_mtime_ns == before and "reusing" in capsys.readouterr().err  # same data: reused
    other = numbered_corpus(tmp_path / "other", n=12)
    rebuilt = prepare_cache(DataSource(str(cache_dir), VOCAB, corpus=str(other)))
    assert "holds other data" in capsys.readouterr().err
    assert rebuilt.manifest["corpus"]["source"] == str(other) and sorted(index_of(d) for d in documents_of(rebuilt)) == list(range(12))
    reordered = prepare_cache(DataSource(str(cache_dir), VOCAB, corpus=str(other), layout=Layout("shuffled", 5)))
    assert reordered.manifest["layout"]["seed"] == 5
    with pytest.raises(UsageError, match="holds documents shuffled with seed 5, not in source order"):
        prepare_cache(DataSource(str(cache_dir), VOCAB, use_cached=True, layout=Layout("as-is")))


def test_reusing_a_cache_cannot_be_combined_with_a_corpus(cache_dir, corpus_dir):
    with pytest.raises(UsageError, match="^--use-cached-data reuses a cache; it cannot be combined with --corpus/--corpus-glob$"):
        prepare_cache(DataSource(str(cache_dir), TEST_VOCAB, use_cached=True, corpus=str(corpus_dir)))
