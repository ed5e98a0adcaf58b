"""The document layout (data/layout.py): disjoint splits, tiny corpora, uniform nested subsets."""


import numpy as np
import pytest

from dropout_decay.common.errors import UsageError
from dropout_decay.data.build import build_cache
from dropout_decay.data.corpus import load_corpus
from dropout_decay.data.layout import Layout
from tests.data.corpora import VOCAB, documents_of, index_of, numbered_corpus


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
