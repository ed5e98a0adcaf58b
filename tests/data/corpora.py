"""Small corpora the data tests make, and reading a cache back into its documents."""

import re

import numpy as np

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
