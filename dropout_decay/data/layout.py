"""Document order and the train / validation / test split: the layout every token limit is cut from.

By default the documents are shuffled with a recorded seed *before* the split, so validation and
test are random held-out slices of the same distribution and every prefix of the training pool
(a token limit, a stream cap) is a uniform random subset of training documents; prefixes are
nested by construction. `as-is` keeps the source order, for corpora whose order is the point
(a curriculum, a time series). Either way the document at position i of the order is
validation when i % 10 == 9 and test when i % 10 == 8.

Validation makes every decision (selection, the best static rate, designed follow-ups); the
test documents are seen by nothing but the final verdicts: not training, not the tokenizer's
sample, not a validation batch. `train-val` is the layout of 0.3 and before (no test split),
kept so stored studies and their caches replay.

Order seeds (`training_order`) lay the same training documents out in another seed's shuffle,
so a result can be replicated over which documents fill each cap, while the split, the
tokenizer, validation and test stay those of the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common import UsageError

ORDERS = ("shuffled", "as-is")
SPLITS = ("train-val-test", "train-val")  # the second: 0.3 and before
LEGACY_SPLITS = "train-val"
EVERY, VAL_AT, TEST_AT = 10, 9, 8


@dataclass(frozen=True)
class Layout:
    order: str = "shuffled"
    seed: int = 0  # the shuffle's seed (recorded, and part of the cache's identity)
    splits: str = "train-val-test"

    def __post_init__(self):
        if self.order not in ORDERS:
            raise UsageError(f"--document-order {self.order!r} is not one of {', '.join(ORDERS)}")
        if self.splits not in SPLITS:
            raise UsageError(f"--splits {self.splits!r} is not one of {', '.join(SPLITS)}")
        if self.order == "as-is":
            object.__setattr__(self, "seed", 0)  # no shuffle, so no seed: all as-is layouts are one

    def sequence(self, n_docs: int) -> np.ndarray:
        """Document ids (source positions) in the order they are laid out."""
        if self.order == "as-is":
            return np.arange(n_docs)
        return np.random.default_rng(self.seed).permutation(n_docs)

    @property
    def has_test(self) -> bool:
        return self.splits != LEGACY_SPLITS

    def split(self, n_docs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(training ids, validation ids, test ids), each in layout order."""
        need = 3 if self.has_test else 2
        if n_docs < need:
            raise UsageError(f"a corpus of {n_docs} document(s) cannot hold out {'validation and test documents' if self.has_test else 'validation documents'} "
                             f"(needs {need} or more)")
        seq = self.sequence(n_docs)
        position = np.arange(n_docs) % EVERY
        val, test = position == VAL_AT, (position == TEST_AT) & self.has_test
        if not val.any():  # fewer than EVERY documents: the last one is validation, the one before test
            val[-1], test[-1] = True, False
        if self.has_test and not test.any():
            test[-2] = True
        return seq[~(val | test)], seq[val], seq[test]

    def training_order(self, n_docs: int, train_ids: np.ndarray, order_seed: int) -> np.ndarray:
        """Positions into `train_ids` (the cache's training documents, in its order) in the order
        the shuffle of `order_seed` puts them: the identity for the cache's own seed."""
        if self.order == "as-is":
            raise UsageError("order seeds reshuffle the training documents; a corpus kept --document-order as-is "
                             "has no other order (drop --order-seeds, or use the shuffled order)")
        rank = np.empty(n_docs, dtype=np.int64)
        rank[Layout(self.order, order_seed).sequence(n_docs)] = np.arange(n_docs)
        return np.argsort(rank[train_ids], kind="stable")

    def words(self) -> str:
        return "in source order" if self.order == "as-is" else f"shuffled with seed {self.seed}"

    def describe(self) -> dict:
        d = {"order": self.order, "seed": self.seed if self.order == "shuffled" else None,
             "val_rule": f"the document at position i of the order is validation when i % {EVERY} == {VAL_AT}"}
        if self.has_test:  # a train-val layout describes itself as 0.3 did, so its caches stay its own
            d |= {"splits": self.splits, "test_rule": f"the document at position i of the order is test when i % {EVERY} == {TEST_AT}"}
        return d

    @classmethod
    def of(cls, described: dict) -> "Layout":
        """The layout a manifest describes."""
        return cls(described["order"], described["seed"] or 0, described.get("splits", LEGACY_SPLITS))
