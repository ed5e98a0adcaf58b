"""The tokenizer (data/tokenizer.py): encode and decode round-trip."""

from dropout_decay.data.cache import load_cache
from tests.conftest import TEST_VOCAB


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
