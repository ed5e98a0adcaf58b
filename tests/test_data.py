"""Corpus formats, document layout, tokenizer, token cache and batch sampling."""

import gzip
import json
import re
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dropout_decay.data.batches import WindowSampler, fixed_batches
from dropout_decay.data.build import build_cache
from dropout_decay.data.cache import CachePaths, DataSource, load_cache
from dropout_decay.data.prepare import prepare_cache
from dropout_decay.data.corpus import clean_transcript, load_corpus
from dropout_decay.common.errors import UsageError
from dropout_decay.data.layout import Layout
from dropout_decay.data.tokenizer import train_tokenizer

from conftest import TEST_VOCAB

VOCAB = 300  # small corpora made by the tests


def documents_of(cache, part="all") -> list[str]:
    """Decode the cache back into its documents, in layout order (split at BOS)."""
    tok = __import__("tokenizers").Tokenizer.from_file(str(cache.paths.tokenizer))
    tokens = {"all": cache.tokens, "train": cache.train_pool(), "val": cache.val, "test": cache.test}[part]
    starts = np.flatnonzero(np.asarray(tokens) == cache.manifest["bos_id"])
    ends = list(starts[1:]) + [tokens.size]
    return [tok.decode(list(map(int, tokens[a + 1 : b]))) for a, b in zip(starts, ends)]


def numbered_corpus(folder, n=60):
    """n files whose names and texts encode their position, as a chronological corpus would."""
    folder.mkdir()
    for i in range(n):
        (folder / f"{i:02d}-year-{1800 + 5 * i}.txt").write_text(f"document {i:02d} begins. " + "words and more words. " * 40)
    return folder


def index_of(text: str) -> int:
    return int(re.match(r"document (\d+) begins", text).group(1))


def test_stage_notes_are_stripped_and_editorial_text_kept():
    text = "We will win. [Applause] Thank you. [Laughter]\n\n\n\nThe [the States] rest."
    assert clean_transcript(text) == "We will win. Thank you.\n\nThe [the States] rest."


def test_round_trip_encode_decode(cache_dir, corpus_dir):
    tok = __import__("tokenizers").Tokenizer.from_file(str(load_cache(cache_dir, TEST_VOCAB).paths.tokenizer))
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
    assert pieces == ["12", "34", "56", "7"]


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


def test_layout_split_is_disjoint_and_as_is_holds_out_every_tenth():
    train, val, test = Layout("as-is").split(249)
    assert list(val) == list(range(9, 249, 10)) and list(test) == list(range(8, 249, 10))
    assert sorted([*train, *val, *test]) == list(range(249))
    train, val, test = Layout("shuffled", 3).split(249)
    assert set(train).isdisjoint(val) and set(train).isdisjoint(test) and set(val).isdisjoint(test)
    assert sorted([*train, *val, *test]) == list(range(249)) and len(val) == 24 and len(test) == 25
    assert list(val) != list(range(9, 249, 10))
    old = Layout("shuffled", 3, "train-val").split(249)  # 0.3's layout: the same validation, no test
    assert np.array_equal(old[1], val) and old[2].size == 0 and sorted(old[0]) == sorted([*train, *test])
    assert np.array_equal(Layout("shuffled", 3).split(249)[0], train)  # the seed fixes it
    assert not np.array_equal(Layout("shuffled", 4).split(249)[0], train)


def test_a_corpus_smaller_than_ten_documents_holds_out_its_last_one_and_one_document_is_refused():
    train, val, test = Layout("as-is").split(5)
    assert list(train) == [0, 1, 2] and list(val) == [4] and list(test) == [3]
    train, val, test = Layout("as-is").split(9)  # position 8 would be test: validation takes it first
    assert list(train) == list(range(7)) and list(val) == [8] and list(test) == [7]
    assert [list(x) for x in Layout("as-is", splits="train-val").split(5)] == [[0, 1, 2, 3], [4], []]
    with pytest.raises(UsageError, match="cannot hold out validation and test documents"):
        Layout().split(2)
    with pytest.raises(UsageError, match="cannot hold out validation documents"):
        Layout(splits="train-val").split(1)


def test_shuffle_makes_every_token_limit_a_uniform_nested_subset(tmp_path):
    corpus = load_corpus(str(numbered_corpus(tmp_path / "corpus")))
    shuffled = build_cache(tmp_path / "shuffled", VOCAB, corpus, Layout("shuffled", 0))
    train_docs = [index_of(d) for d in documents_of(shuffled, "train")]
    bos = np.flatnonzero(np.asarray(shuffled.train_pool()) == shuffled.manifest["bos_id"])
    limit = shuffled.n_train // 6
    small = train_docs[: int((bos < limit).sum())]  # the documents a token limit of 1/6 trains on
    assert len(small) == 8
    assert min(small) < 20 and max(small) >= 40  # drawn from across the whole range, not its start
    assert np.mean(small) == pytest.approx(29.5, abs=12)
    val_docs = [index_of(d) for d in documents_of(shuffled, "val")]
    assert len(val_docs) == 6 and min(val_docs) < 20 and max(val_docs) >= 40
    test_docs = [index_of(d) for d in documents_of(shuffled, "test")]
    assert len(test_docs) == 6 and min(test_docs) < 20 and max(test_docs) >= 40
    assert sorted(train_docs + val_docs + test_docs) == list(range(60))
    # nested: a larger limit's documents start with a smaller limit's, in the same order
    pools = [shuffled.train_pool(n) for n in (limit, 2 * limit, 4 * limit)]
    assert all(np.array_equal(pools[i], pools[i + 1][: pools[i].size]) for i in range(2))
    # as-is reproduces the layout of 0.1: name order, every tenth document held out
    as_is = build_cache(tmp_path / "as-is", VOCAB, corpus, Layout("as-is"))
    assert [index_of(d) for d in documents_of(as_is, "train")] == [i for i in range(60) if i % 10 < 8]
    assert [index_of(d) for d in documents_of(as_is, "val")] == list(range(9, 60, 10))
    assert [index_of(d) for d in documents_of(as_is, "test")] == list(range(8, 60, 10))
    assert as_is.manifest["layout"]["order"] == "as-is" and shuffled.manifest["layout"]["seed"] == 0


def write_formats(folder):
    """One corpus in every supported format; returns the documents it holds."""
    folder.mkdir()
    doc = lambda kind, i: f"{kind} document {i}: " + "text of it. " * (5 + i)
    (folder / "a.txt").write_text(doc("txt", 0))
    (folder / "b.md").write_text(doc("md", 0))
    with gzip.open(folder / "c.txt.gz", "wt") as f:
        f.write(doc("gz", 0))
    sub = folder / "nested"
    sub.mkdir()
    (sub / "d.jsonl").write_text("".join(json.dumps({"text": doc("jsonl", i), "id": i}) + "\n" for i in range(2)) + "\n")
    with gzip.open(sub / "e.jsonl.gz", "wt") as f:
        f.writelines(json.dumps({"text": doc("jsonl.gz", i)}) + "\n" for i in range(2))
    pq.write_table(pa.table({"text": [doc("parquet", i) for i in range(2)], "url": ["x", "y"]}), folder / "f.parquet")
    (folder / "notes.csv").write_text("ignored,because,not a corpus format\n")
    (folder / ".hidden.txt").write_text("hidden files are skipped")
    kinds = [("txt", 1), ("md", 1), ("gz", 1), ("jsonl", 2), ("jsonl.gz", 2), ("parquet", 2)]
    return sorted(doc(kind, i).strip() for kind, n in kinds for i in range(n))


def test_every_corpus_format_is_read_in_a_mixed_folder(tmp_path):
    expected = write_formats(tmp_path / "mixed")
    corpus = load_corpus(str(tmp_path / "mixed"))
    assert [f.name for f in corpus.files] == ["a.txt", "b.md", "c.txt.gz", "f.parquet", "d.jsonl", "e.jsonl.gz"]
    assert sorted(corpus.documents()) == expected
    cache = build_cache(tmp_path / "cache", VOCAB, corpus)
    assert sorted(documents_of(cache)) == expected and cache.manifest["corpus"]["documents"] == 9


@pytest.mark.parametrize("make", ["jsonl", "parquet", "glob"])
def test_each_format_alone_and_a_configurable_text_field(tmp_path, make):
    texts = [f"row {i} says " + "something. " * 10 for i in range(12)]
    if make == "parquet":
        pq.write_table(pa.table({"body": texts}), tmp_path / "shard_00000.parquet", row_group_size=5)
        corpus = load_corpus(str(tmp_path / "shard_00000.parquet"), text_field="body")
    elif make == "jsonl":
        (tmp_path / "dump.jsonl").write_text("".join(json.dumps({"body": t}) + "\n" for t in texts))
        corpus = load_corpus(str(tmp_path / "dump.jsonl"), text_field="body")
    else:
        for i, t in enumerate(texts):
            (tmp_path / f"{i:02d}.md").write_text(t)
        corpus = load_corpus(corpus_glob=str(tmp_path / "*.md"))
    assert sorted(corpus.documents()) == sorted(t.strip() for t in texts)
    if make != "parquet":  # the field and the glob reach the cache build too
        where = (dict(corpus=str(tmp_path / "dump.jsonl"), text_field="body") if make == "jsonl"
                 else dict(corpus_glob=str(tmp_path / "*.md")))
        cache = prepare_cache(DataSource(str(tmp_path / "cache"), VOCAB, **where))
        assert sorted(documents_of(cache)) == sorted(t.strip() for t in texts)


@pytest.mark.parametrize("kind, content, message", [
    ("jsonl", '{"text": "fine"}\n{"text": "fine too"}\nnot json at all\n', r"bad\.jsonl: line 3 is not JSON"),
    ("jsonl", '{"text": "fine"}\n{"body": "no text field"}\n', r"bad\.jsonl: line 2 has no string field 'text'.*--text-field"),
    ("jsonl", '{"text": "fine"}\n{"text": 7}\n', r"line 2 has no string field 'text'"),
    ("parquet", None, r"bad\.parquet: row 1 has no 'text' \(null\)"),
    ("parquet-column", None, r"no column 'text' \(columns: body\)"),
    ("gz", b"not gzip at all", r"bad\.txt\.gz: unreadable"),
    ("txt", "caf\xe9".encode("latin-1"), r"bad\.txt: is not UTF-8 text \(byte 3\)"),
])
def test_a_bad_row_or_file_fails_in_one_line_naming_it_and_writes_nothing(tmp_path, kind, content, message):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "good.txt").write_text("a good document. " * 20)
    if kind == "parquet":
        pq.write_table(pa.table({"text": ["ok", None, "ok"]}), folder / "bad.parquet")
    elif kind == "parquet-column":
        pq.write_table(pa.table({"body": ["ok"]}), folder / "bad.parquet")
    elif kind == "gz":
        (folder / "bad.txt.gz").write_bytes(content)
    else:
        path = folder / f"bad.{kind}"
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    cache_dir = tmp_path / "cache"
    with pytest.raises(UsageError, match=message) as e:
        prepare_cache(DataSource(str(cache_dir), VOCAB, corpus=str(folder)))
    assert "\n" not in str(e.value)
    assert not cache_dir.exists()


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


def test_reusing_a_cache_cannot_be_combined_with_a_corpus(cache_dir, corpus_dir):
    with pytest.raises(UsageError, match="^--use-cached-data reuses a cache; it cannot be combined with --corpus/--corpus-glob$"):
        prepare_cache(DataSource(str(cache_dir), TEST_VOCAB, use_cached=True, corpus=str(corpus_dir)))


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


def test_corpus_refuses_empty_and_unsupported(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n \n")
    with pytest.raises(UsageError, match="holds no text"):
        build_cache(tmp_path / "c", VOCAB, load_corpus(str(tmp_path / "empty.txt")))
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(UsageError, match="unsupported file type"):
        load_corpus(str(tmp_path / "data.csv"))
    with pytest.raises(UsageError, match="matches no file of a supported type"):
        load_corpus(corpus_glob=str(tmp_path / "*.csv"))


def test_a_lone_text_file_is_cut_into_documents_at_paragraph_breaks(tmp_path):
    para = "word " * 2000
    (tmp_path / "one.txt").write_text("\n\n".join([f"{i} " + para for i in range(30)]))
    docs = list(load_corpus(str(tmp_path / "one.txt")).documents())
    assert len(docs) == 6 and all(d.count("\n\n") == 4 for d in docs)
    assert [int(d.split()[0]) for d in docs] == [0, 5, 10, 15, 20, 25]


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
