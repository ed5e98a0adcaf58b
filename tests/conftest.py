"""Shared fixtures: one small token cache built once per session from the committed corpus."""

from pathlib import Path

import pytest

from dropout_decay.cache import build_cache
from dropout_decay.corpus import load_corpus

FIXTURE_CORPUS = Path(__file__).parent / "fixtures" / "corpus"
TEST_VOCAB = 512


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    return FIXTURE_CORPUS


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cache")
    build_cache(d, TEST_VOCAB, load_corpus(str(FIXTURE_CORPUS)))
    return d
