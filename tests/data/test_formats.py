"""Reading documents (data/formats.py): every format alone and mixed, a configurable text field,
a bad row or file named in one line."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dropout_decay.common.errors import UsageError
from dropout_decay.data.build import build_cache
from dropout_decay.data.cache import DataSource
from dropout_decay.data.corpus import load_corpus
from dropout_decay.data.prepare import prepare_cache
from tests.data.corpora import VOCAB, documents_of


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
