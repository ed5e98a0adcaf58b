"""Loading a cache (data/cache.py) and every refusal of a stale, foreign or damaged one; an order
seed changes which documents fill a cap and nothing else."""

import json
import shutil

import numpy as np
import pytest
from tokenizers import Tokenizer

from dropout_decay.common.errors import UsageError
from dropout_decay.data.build import build_cache
from dropout_decay.data.cache import CachePaths, DataSource, load_cache
from dropout_decay.data.corpus import load_corpus
from dropout_decay.data.layout import Layout
from dropout_decay.data.prepare import prepare_cache
from dropout_decay.data.tokenizer import train_tokenizer
from tests.conftest import TEST_VOCAB
from tests.data.corpora import VOCAB, index_of, numbered_corpus


@pytest.fixture
def scratch_cache(cache_dir, tmp_path):
    d = tmp_path / "c"
    shutil.copytree(cache_dir, d)
    return CachePaths(d, TEST_VOCAB)


def edit_manifest(cache: CachePaths, **changes) -> dict:
    """Rewrite the cache's manifest with `changes`; return it as it was."""
    manifest = json.loads(cache.manifest.read_text())
    cache.manifest.write_text(json.dumps(manifest | changes))
    return manifest


def test_refuses_missing_cache(tmp_path):
    with pytest.raises(UsageError, match="no token cache for vocab 512.*manifest-v512.json is missing"):
        prepare_cache(DataSource(str(tmp_path), TEST_VOCAB, use_cached=True))


def test_refuses_other_vocab(cache_dir):
    with pytest.raises(UsageError, match="no token cache for vocab 4096"):
        load_cache(cache_dir, 4096)


def test_refuses_a_manifest_whose_vocab_is_not_its_name(scratch_cache):
    edit_manifest(scratch_cache, vocab_size=999)
    with pytest.raises(UsageError, match=f"manifest-v{TEST_VOCAB}.json is for vocab 999, not {TEST_VOCAB}$"):
        load_cache(scratch_cache.dir, TEST_VOCAB)


@pytest.mark.parametrize("train_tokens", [0, "all"])
def test_refuses_a_split_that_leaves_no_training_or_no_validation(scratch_cache, train_tokens):
    n = json.loads(scratch_cache.manifest.read_text())["token_count"]
    edit_manifest(scratch_cache, train_tokens=n if train_tokens == "all" else 0)
    with pytest.raises(UsageError, match="has an impossible train/val/test split$"):
        load_cache(scratch_cache.dir, TEST_VOCAB)


def test_refuses_a_manifest_that_is_not_ours(scratch_cache):
    for text in ("{not json", json.dumps({"vocab_size": TEST_VOCAB})):
        scratch_cache.manifest.write_text(text)
        with pytest.raises(UsageError, match=f"manifest-v{TEST_VOCAB}.json is not a dropout-decay cache manifest$"):
            load_cache(scratch_cache.dir, TEST_VOCAB)


def test_a_token_limit_must_be_positive(cache_dir):
    cache = load_cache(cache_dir, TEST_VOCAB)
    assert len(cache.train_pool(1)) == 1
    with pytest.raises(UsageError, match="^token limit must be positive, got 0$"):
        cache.train_pool(0)


def test_refuses_foreign_tokenizer(scratch_cache):
    other = train_tokenizer(["a different corpus entirely " * 50], 300)
    scratch_cache.tokenizer.write_text(other.to_str())
    with pytest.raises(UsageError, match="another tokenizer"):
        load_cache(scratch_cache.dir, TEST_VOCAB)


def test_refuses_a_truncated_file(scratch_cache):
    data = scratch_cache.tokens.read_bytes()
    scratch_cache.tokens.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="unreadable or truncated"):
        load_cache(scratch_cache.dir, TEST_VOCAB)


def test_refuses_a_shorter_but_valid_token_array(scratch_cache):
    tokens = np.load(scratch_cache.tokens)
    np.save(scratch_cache.tokens, tokens[:-10])
    with pytest.raises(UsageError, match=f"has {tokens.size - 10:,} tokens, its manifest says {tokens.size:,}: "
                                         "truncated or replaced; rebuild the cache$"):
        load_cache(scratch_cache.dir, TEST_VOCAB)


def test_refuses_wrong_dtype(scratch_cache):
    n = json.loads(scratch_cache.manifest.read_text())["token_count"]
    np.save(scratch_cache.tokens, np.zeros(n, dtype=np.int32))
    with pytest.raises(UsageError, match="int32.*expected 1-D uint16"):
        load_cache(scratch_cache.dir, TEST_VOCAB)


def test_refuses_a_cache_of_the_old_name_ordered_format(scratch_cache):
    edit_manifest(scratch_cache, format=1)
    with pytest.raises(UsageError, match="built by an older dropout-decay .*name order, no recorded layout\\); "
                                         "rebuild it: drop --use-cached-data, or run the `cache` command$"):
        load_cache(scratch_cache.dir, TEST_VOCAB)


def test_refuses_vocab_beyond_uint16(tmp_path, corpus_dir):
    with pytest.raises(UsageError, match="fit uint16"):
        build_cache(tmp_path, 70000, load_corpus(str(corpus_dir)))


def test_an_order_seed_changes_which_documents_fill_the_first_cap_and_nothing_else(tmp_path):
    cache = build_cache(tmp_path / "c", VOCAB, load_corpus(str(numbered_corpus(tmp_path / "corpus"))), Layout("shuffled", 0))
    tok = Tokenizer.from_file(str(cache.paths.tokenizer))

    def docs(pool):
        starts = np.flatnonzero(pool == cache.manifest["bos_id"])
        texts = [tok.decode(list(map(int, pool[a + 1:b]))) for a, b in zip(starts, [*starts[1:], pool.size])]
        return [index_of(t) for t in texts if t.startswith("document ") and " begins" in t[:20]]  # a cut last one aside

    cap = cache.n_train // 4
    own, other = cache.train_pool(cap, 0), cache.train_pool(cap, 1)
    assert isinstance(own, np.memmap) and own.size == other.size == cap  # the cache's own order is a view
    assert set(docs(own)) != set(docs(other))
    assert sorted(docs(cache.train_pool(None, 1))) == sorted(docs(cache.train_pool(None, 0)))  # the same documents
    assert np.array_equal(cache.train_pool(2 * cap, 1)[:cap], other)  # nested within an order seed
    # the seed's own shuffle, restricted to the training documents: recomputed from the layout alone
    seq = np.random.default_rng(1).permutation(60)
    train_ids = set(Layout("shuffled", 0).split(60)[0])
    assert docs(cache.train_pool(None, 1)) == [int(d) for d in seq if d in train_ids]  # file i is document i
