"""Dropout pressure: where a point of training stands, in the two coordinates the law uses.

x = log10(P / U): parameters per unique token the model may see (U, the cap it samples from);
y = log10(C / U): tokens the optimiser has seen per unique token, i.e. passes over the cap.
Every trained segment records P, U, C with these coordinates, so a law can be fitted to any
stored study, not only to a map (`law_fit.py`).
"""

from __future__ import annotations

import math


def pressure_coordinates(n_params: int, unique_tokens: int, tokens_seen: int) -> dict:
    return {"n_params": n_params, "unique_tokens": unique_tokens, "tokens_seen": tokens_seen,
            "tokens_per_parameter": unique_tokens / n_params, "passes": tokens_seen / unique_tokens,
            "x": math.log10(n_params / unique_tokens), "y": math.log10(tokens_seen / unique_tokens)}
