"""The data pipeline: corpus files -> document layout (train / validation split) -> BPE tokenizer ->
uint16 token cache -> training and evaluation batches. May import: common.

The names below are what the subpackage offers the others, which import them from here."""

from .batches import WindowSampler, fixed_batches
from .cache import DEFAULT_CACHE_DIR, DataSource, TokenCache, load_cache
from .layout import LEGACY_SPLITS, Layout, ORDERS, SPLITS
from .prepare import prepare_cache
from .tokenizer import DEFAULT_VOCAB

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_VOCAB",
    "DataSource",
    "LEGACY_SPLITS",
    "Layout",
    "ORDERS",
    "SPLITS",
    "TokenCache",
    "WindowSampler",
    "fixed_batches",
    "load_cache",
    "prepare_cache",
]
