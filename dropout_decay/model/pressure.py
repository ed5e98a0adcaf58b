"""Dropout pressure: where a point of training stands, and the rate the pressure law gives there.

x = log10(P / U): parameters per unique token the model may see (U, the cap it samples from);
y = log10(C / U): tokens the optimiser has seen per unique token, i.e. passes over the cap.
The law (the form of the seed's later project, published_regimes.md) is

    p = clamp(p_min, p_max, A·x + B·y + D·x·y + C0)      (first-order: D = 0)

fitted to a map's cells (analysis/pressure_law.py) and valid only in the regime it was fitted
in: `regime` names what a law carries over between studies and what it does not (model size,
steps, caps, batch and seeds are absorbed by x, y or the protocol, so they are not in it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..common import UsageError

PRESSURE_FORMS = ("first-order", "interaction")
LAW_KEYS = ("A", "B", "D", "C0", "p_min", "p_max", "regime")


def pressure_coordinates(n_params: int, unique_tokens: int, tokens_seen: int) -> dict:
    return {"n_params": n_params, "unique_tokens": unique_tokens, "tokens_seen": tokens_seen,
            "tokens_per_parameter": unique_tokens / n_params, "passes": tokens_seen / unique_tokens,
            "x": math.log10(n_params / unique_tokens), "y": math.log10(tokens_seen / unique_tokens)}


def pressure_rate(law: dict, x: float, y: float) -> float:
    raw = law["A"] * x + law["B"] * y + law["D"] * x * y + law["C0"]
    return min(max(raw, law["p_min"]), law["p_max"])


def pressure_formula(law: dict) -> str:
    terms = f"{law['A']:.3g}·x {'+' if law['B'] >= 0 else '−'} {abs(law['B']):.3g}·y"
    if law["D"]:
        terms += f" {'+' if law['D'] >= 0 else '−'} {abs(law['D']):.3g}·x·y"
    return f"p = clamp({law['p_min']:g}, {law['p_max']:g}, {terms} {'+' if law['C0'] >= 0 else '−'} {abs(law['C0']):.3g})"


def schedule_shape(train: dict) -> str:
    return "constant after warm-up" if train["min_lr_ratio"] == 1 else f"cosine to {train['min_lr_ratio']:g} of the peak"


def regime(settings: dict, manifest: dict, dropout_form: dict) -> dict:
    """What a pressure law is valid for, from a study's settings, its cache's manifest and its
    dropout description: the model family, tokenizer, corpus, optimiser with its peak rate,
    weight decay and schedule shape, and the dropout placement with its mask form."""
    train = settings["train"]
    placement = {k: v for k, v in dropout_form.items() if k != "masks"}
    return {"model_family": "nanochat-derived GPT (untied head, no biases)",
            "vocab_size": manifest["vocab_size"], "tokenizer_sha256": manifest.get("tokenizer_sha256"),
            "corpus_sha256": (manifest.get("corpus") or {}).get("sha256"),
            "optimizer": "AdamW(0.9, 0.95)", "lr": train["lr"], "weight_decay": train["weight_decay"],
            "lr_schedule": schedule_shape(train), "dropout_placement": json.dumps(placement, sort_keys=True),
            "mask_form": train.get("dropout_masks", 1)}


def regime_of(config: dict) -> dict:
    """The regime of a stored study, from its config.json."""
    return regime(config["settings"], config["data"]["manifest"], config.get("dropout_form", {}))


def regime_differences(a: dict, b: dict) -> list[str]:
    """The names (and both values, shortened) of what differs between two regimes."""
    def short(v):
        return str(v)[:24] + "…" if isinstance(v, str) and len(v) > 28 else v
    return [f"{k} {short(a.get(k))} vs {short(b.get(k))}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def read_pressure_law(path: str) -> dict:
    """A law file written by a map or `backtest` (pressure_law.json); one line if it is missing,
    not JSON, or lacks a coefficient."""
    p = Path(path)
    try:
        law = json.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"pressure law {path}: no such file (a map writes pressure_law.json; run the map first)") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"pressure law {path} is not a readable JSON law file ({type(e).__name__}: {e})") from None
    missing = [k for k in LAW_KEYS if not isinstance(law, dict) or k not in law]
    if missing:
        raise UsageError(f"pressure law {path} lacks {', '.join(missing)}: not a law file a map wrote")
    bad = [k for k in LAW_KEYS[:-1] if not isinstance(law[k], (int, float)) or isinstance(law[k], bool)
           or not math.isfinite(law[k])]
    if bad or not 0 <= law["p_min"] <= law["p_max"] < 1:
        raise UsageError(f"pressure law {path}: {', '.join(bad) or 'p_min/p_max'} must be finite numbers with "
                         "0 <= p_min <= p_max < 1")
    return law
