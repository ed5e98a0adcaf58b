"""Building a cache (data/build.py): every document once behind a BOS, a killed build leaves no
loadable cache, and no test document reaches training, validation or the tokenizer."""

import shutil

import numpy as np
import pytest
from tokenizers import Tokenizer

import dropout_decay.data.build as build_mod
from dropout_decay.common.errors import UsageError
from dropout_decay.data.batches import fixed_batches
from dropout_decay.data.build import build_cache
from dropout_decay.data.cache import CachePaths, load_cache
from dropout_decay.data.corpus import load_corpus
from dropout_decay.data.layout import Layout
from tests.conftest import TEST_VOCAB
from tests.data.corpora import VOCAB, documents_of, index_of, numbered_corpus


@pytest.fixture
def scratch_cache(cache_dir, tmp_path):
    d = tmp_path / "c"
    shutil.copytree(cache_dir, d)
    return CachePaths(d, TEST_VOCAB)


def test_cache_holds_every_document_once_behind_a_bos(cache_dir, corpus_dir):
    cache = load_cache(cache_dir, TEST_VOCAB)
    m = cache.manifest
    assert cache.tokens.dtype == np.uint16 and isinstance(cache.tokens, np.memmap)
    assert m["token_count"] == cache.tokens.size == m["train_tokens"] + m["val_tokens"] + m["test_tokens"]
    assert (m["train_documents"], m["val_documents"], m["test_documents"], m["corpus"]["documents"]) == (10, 1, 1, 12)
    assert cache.tokens[0] == m["bos_id"] and cache.val[0] == m["bos_id"] and cache.test[0] == m["bos_id"]
    decoded = documents_of(cache)
    originals = [p.read_text().replace("\r\n", "\n").strip() for p in sorted(corpus_dir.glob("*.txt"))]
    assert sorted(decoded) == sorted(originals)
    assert m["layout"]["order"] == "shuffled" and m["layout"]["seed"] == 0


def test_killed_build_leaves_no_loadable_cache(scratch_cache, corpus_dir, monkeypatch):
    import dropout_decay.data.build as build_mod

    def die(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_mod, "write_json", die)  # killed just before the manifest lands
    with pytest.raises(KeyboardInterrupt):
        build_cache(scratch_cache.dir, TEST_VOCAB, load_corpus(str(corpus_dir)))
    with pytest.raises(UsageError, match="missing"):
        load_cache(scratch_cache.dir, TEST_VOCAB)
    assert not list(scratch_cache.dir.glob(".*.tmp"))


def test_a_test_document_never_reaches_training_validation_batches_or_the_tokenizer(tmp_path, monkeypatch):
    sampled = []
    original = build_mod.train_tokenizer

    def recording(texts, *args, **kwargs):  # the tokenizer's training sample, as the build hands it over
        sampled.extend(texts)
        return original(sampled, *args, **kwargs)

    monkeypatch.setattr(build_mod, "train_tokenizer", recording)
    cache = build_cache(tmp_path / "c", VOCAB, load_corpus(str(numbered_corpus(tmp_path / "corpus"))), Layout("shuffled", 0))
    test = {index_of(d) for d in documents_of(cache, "test")}
    assert len(test) == 6 and cache.manifest["test_documents"] == 6
    assert test.isdisjoint(index_of(d) for d in sampled) and len(sampled) == cache.manifest["train_documents"]
    assert test.isdisjoint(index_of(d) for d in documents_of(cache, "train"))
    assert test.isdisjoint(index_of(d) for d in documents_of(cache, "val"))
    tok = Tokenizer.from_file(str(cache.paths.tokenizer))
    for order_seed in (0, 1, 7):  # no order seed brings one into a training pool
        pool = cache.train_pool(None, order_seed)
        starts = np.flatnonzero(pool == cache.manifest["bos_id"])
        docs = {index_of(tok.decode(list(map(int, pool[a + 1:b])))) for a, b in zip(starts, [*starts[1:], pool.size])}
        assert docs.isdisjoint(test) and len(docs) == cache.manifest["train_documents"]
    # every validation batch window lies inside the validation slice, which holds no test token
    val_start = cache.n_train
    windows = np.concatenate([b.numpy().ravel() for b in fixed_batches(cache.val, 4, 2, 16)])
    assert set(windows) <= set(np.asarray(cache.tokens[val_start:val_start + cache.n_val]))
    assert cache.test.size == cache.manifest["test_tokens"] > 0
