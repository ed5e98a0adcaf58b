"""dropout-decay: does decaying dropout beat every static rate on a growing token stream?

Optuna studies (screen -> confirm -> locked stream) over a small nanochat-derived GPT.
"""

__version__ = "0.8.0"

NANOCHAT_ATTRIBUTION = (
    "Tokenizer and model derived from nanochat (https://github.com/karpathy/nanochat), "
    "MIT License, Copyright (c) 2025 Andrej Karpathy."
)
