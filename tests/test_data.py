"""Corpus, tokenizer, token cache, splits and batch sampling on the committed fixture corpus."""

import json
import shutil

import numpy as np
import pytest

from dropout_decay.batches import WindowSampler, fixed_batches
from dropout_decay.cache import CachePaths, build_cache, load_cache, prepare_cache, split_documents
from dropout_decay.corpus import clean, load_corpus
from dropout_decay.errors import UsageError
from dropout_decay.tokenizer import train_tokenizer

from conftest import TEST_VOCAB


def test_stage_notes_are_stripped_and_editorial_text_kept():
    text = "We will win. [Applause] Thank you. [Laughter]\n\n\n\nThe [the States] rest."
    assert clean(text) == "We will win. Thank you.\n\nThe [the States] rest."


def test_round_trip_encode_decode(cache_dir, corpus_dir):
    tok = load_cache(cache_dir, TEST_VOCAB).tokenizer()
    samples = [
        (corpus_dir / "00-1790-Washington-1.txt").read_text()[:2000],
        "Digits 1234567 split in pairs; émigrés, naïve café, 日本語, tabs\tand\r\nnewlines  ",
    ]
    for text in samples:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert max(ids) < TEST_VOCAB
        assert tok.decode(ids, skip_special_tokens=False) == text
    # nanochat's split pattern keeps digits in groups of at most two
    pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str("1234567")]
    assert len(pieces) == 4


def test_cache_layout_and_manifest(cache_dir):
    cache = load_cache(cache_dir, TEST_VOCAB)
    m = cache.manifest
    assert cache.tokens.dtype == np.uint16 and isinstance(cache.tokens, np.memmap)
    assert m["token_count"] == cache.tokens.size == m["train_tokens"] + m["val_tokens"]
    assert m["train_documents"] + m["val_documents"] == m["corpus"]["documents"] == 12
    bos = m["bos_id"]
    # each document starts with BOS: BOS count equals document count, and both parts start with one
    assert int((np.asarray(cache.tokens) == bos).sum()) == 12
    assert cache.tokens[0] == bos and cache.val[0] == bos


def test_split_is_disjoint_and_spread():
    train, val = split_documents(249)
    assert set(train).isdisjoint(val) and sorted(train + val) == list(range(249))
    assert len(val) == 24 and val[0] == 9 and val[-1] == 239


def test_token_limit_is_a_prefix_view_and_refuses_too_many(cache_dir):
    cache = load_cache(cache_dir, TEST_VOCAB)
    pool = cache.train_pool(1000)
    assert pool.size == 1000 and np.shares_memory(pool, cache.tokens)
    assert np.array_equal(pool, cache.tokens[:1000])
    with pytest.raises(UsageError, match=f"{cache.n_train + 1:,}.*{cache.n_train:,}"):
        cache.train_pool(cache.n_train + 1)


def test_reuse_skips_rebuild_for_same_corpus(cache_dir, corpus_dir, capsys):
    before = CachePaths(cache_dir, TEST_VOCAB).tokens.stat().st_mtime_ns
    prepare_cache(cache_dir, TEST_VOCAB, corpus=str(corpus_dir))
    assert CachePaths(cache_dir, TEST_VOCAB).tokens.stat().st_mtime_ns == before
    assert "reusing" in capsys.readouterr().err


@pytest.fixture
def scratch_cache(cache_dir, tmp_path):
    d = tmp_path / "c"
    shutil.copytree(cache_dir, d)
    return CachePaths(d, TEST_VOCAB)


def test_refuses_missing_cache(tmp_path):
    with pytest.raises(UsageError, match="no token cache for vocab 512.*manifest-v512.json is missing"):
        prepare_cache(tmp_path, TEST_VOCAB, use_cached=True)


def test_refuses_other_vocab(cache_dir):
    with pytest.raises(UsageError, match="no token cache for vocab 4096"):
        load_cache(cache_dir, 4096)


def test_refuses_foreign_tokenizer(scratch_cache):
    other = train_tokenizer(["a different corpus entirely " * 50], 300)
    scratch_cache.tokenizer.write_text(other.to_str())
    with pytest.raises(UsageError, match="another tokenizer"):
        load_cache(scratch_cache.dir, TEST_VOCAB)


def test_refuses_truncated_tokens(scratch_cache):
    data = scratch_cache.tokens.read_bytes()
    scratch_cache.tokens.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="truncated"):
        load_cache(scratch_cache.dir, TEST_VOCAB)


def test_refuses_wrong_dtype(scratch_cache):
    n = json.loads(scratch_cache.manifest.read_text())["token_count"]
    np.save(scratch_cache.tokens, np.zeros(n, dtype=np.int32))
    with pytest.raises(UsageError, match="int32.*expected 1-D uint16"):
        load_cache(scratch_cache.dir, TEST_VOCAB)


def test_refuses_vocab_beyond_uint16(tmp_path, corpus_dir):
    with pytest.raises(UsageError, match="fit uint16"):
        build_cache(tmp_path, 70000, load_corpus(str(corpus_dir)))


def test_killed_build_leaves_no_loadable_cache(scratch_cache, corpus_dir, monkeypatch):
    import dropout_decay.cache as cache_mod

    def die(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod, "write_json", die)  # killed just before the manifest lands
    with pytest.raises(KeyboardInterrupt):
        build_cache(scratch_cache.dir, TEST_VOCAB, load_corpus(str(corpus_dir)))
    with pytest.raises(UsageError, match="missing"):
        load_cache(scratch_cache.dir, TEST_VOCAB)
    assert not list(scratch_cache.dir.glob(".*.tmp"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"corpus": "/nonexistent/x.txt"}, "does not exist"),
        ({"corpus_glob": "/nonexistent/*.txt"}, "matches no file"),
    ],
)
def test_corpus_refusals(kwargs, message):
    with pytest.raises(UsageError, match=message):
        load_corpus(**kwargs)


def test_corpus_refuses_empty_and_non_utf8(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n [Applause]\n")
    with pytest.raises(UsageError, match="holds no text"):
        load_corpus(str(tmp_path / "empty.txt"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UsageError, match="latin1.txt is not UTF-8"):
        load_corpus(str(tmp_path / "latin1.txt"))


def test_single_file_is_cut_into_documents(tmp_path):
    para = "word " * 2000
    (tmp_path / "one.txt").write_text("\n\n".join([para] * 30))
    assert len(load_corpus(str(tmp_path / "one.txt")).documents) == 6


def test_sampler_is_deterministic_per_seed_and_respects_limit(cache_dir):
    pool = load_cache(cache_dir, TEST_VOCAB).train_pool()
    a, b, c = (WindowSampler(pool, 4, 16, seed) for seed in (1, 1, 2))
    xa, xb, xc = a.sample(), b.sample(), c.sample()
    assert xa.shape == (4, 17) and xa.dtype.is_floating_point is False
    assert (xa == xb).all() and not (xa == xc).all()
    # windows are real slices of the pool
    row = xa[0].numpy()
    starts = np.flatnonzero(np.asarray(pool[: pool.size - 16]) == row[0])
    assert any(np.array_equal(pool[s : s + 17], row) for s in starts)
    # a limit confines every window to the first `limit` tokens
    limited = WindowSampler(pool, 256, 16, 3)
    prefix = np.asarray(pool[:100])
    for _ in range(5):
        for w in limited.sample(100).numpy():
            assert any(np.array_equal(prefix[s : s + 17], w) for s in range(100 - 16))


def test_fixed_batches_cover_the_pool_evenly(cache_dir):
    val = load_cache(cache_dir, TEST_VOCAB).val
    batches = fixed_batches(val, 3, 4, 16)
    assert len(batches) == 3 and all(b.shape == (4, 17) for b in batches)
    assert (batches[0][0].numpy() == val[:17]).all() and (batches[-1][-1].numpy() == val[-17:]).all()
    again = fixed_batches(val, 3, 4, 16)
    assert all((x == y).all() for x, y in zip(batches, again))
