"""Document order and the train/validation split: the layout every token limit is cut from.

By default the documents are shuffled with a recorded seed *before* the split, so validation is
a random held-out slice of the same distribution and every prefix of the training pool (a
token limit, a stream cap) is a uniform random subset of training documents; prefixes are
nested by construction. `as-is` keeps the source order, for corpora whose order is the point
(a curriculum, a time series). Either way the document at position i of the order is held out
when i % VAL_EVERY == VAL_EVERY - 1, so `as-is` is the layout of earlier versions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common.errors import UsageError

ORDERS = ("shuffled", "as-is")
VAL_EVERY = 10


@dataclass(frozen=True)
class Layout:
    order: str = "shuffled"
    seed: int = 0  # the shuffle's seed (recorded, and part of the cache's identity)

    def __post_init__(self):
        if self.order not in ORDERS:
            raise UsageError(f"--document-order {self.order!r} is not one of {', '.join(ORDERS)}")
        if self.order == "as-is":
            object.__setattr__(self, "seed", 0)  # no shuffle, so no seed: all as-is layouts are one

    def sequence(self, n_docs: int) -> np.ndarray:
        """Document ids (source positions) in the order they are laid out."""
        if self.order == "as-is":
            return np.arange(n_docs)
        return np.random.default_rng(self.seed).permutation(n_docs)

    def split(self, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
        """(training ids, validation ids), each in layout order."""
        if n_docs < 2:
            raise UsageError(f"a corpus of {n_docs} document(s) cannot hold out validation documents (needs 2 or more)")
        seq = self.sequence(n_docs)
        held = np.arange(n_docs) % VAL_EVERY == VAL_EVERY - 1
        if not held.any():  # fewer than VAL_EVERY documents: hold out the last one
            held[-1] = True
        return seq[~held], seq[held]

    def words(self) -> str:
        return "in source order" if self.order == "as-is" else f"shuffled with seed {self.seed}"

    def describe(self) -> dict:
        return {"order": self.order, "seed": self.seed if self.order == "shuffled" else None,
                "val_rule": f"the document at position i of the order is validation when i % {VAL_EVERY} == {VAL_EVERY - 1}"}
