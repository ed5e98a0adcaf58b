"""Resolving a corpus (data/corpus.py): the default corpus's cleaning, refusals, a lone text file."""

import pytest

from dropout_decay.common.errors import UsageError
from dropout_decay.data.build import build_cache
from dropout_decay.data.corpus import clean_transcript, load_corpus
from tests.data.corpora import VOCAB


def test_stage_notes_are_stripped_and_editorial_text_kept():
    text = "We will win. [Applause] Thank you. [Laughter]\n\n\n\nThe [the States] rest."
    assert clean_transcript(text) == "We will win. Thank you.\n\nThe [the States] rest."


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
