"""Every recorded knob in one table: whether it belongs to a study's identity, and what a stored
config that lacks it ran with.

A study's fingerprint (settings.py) says which stored study a command continues, so it must never
move under a study that exists. The rule that guarantees it: a knob recorded since the first
fingerprint (0.3) is always in it; any other knob is left out whenever it holds its `absent`
value, which is the field's default unless its row says otherwise. A knob with no row is such a
later knob, so a new one (a field with a default in Settings or TrainConfig) leaves every stored
fingerprint as it was by construction, with nothing to add here; a knob that does not shape
results (where the cache lies, how threads are used) gets a row saying so.
tests/design/test_knobs.py checks that the table covers every field and that every study under
docs/results/ keeps its fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..data import LEGACY_SPLITS
from ..model import LEGACY_MASKS

DEFAULT = object()  # `absent`: the field's own default


@dataclass(frozen=True)
class Knob:
    identity: bool = True  # part of what makes two runs the same experiment
    since_first: bool = False  # in the first fingerprint (0.3): in it at every value
    absent: object = DEFAULT  # the value a stored config without this knob ran with


FIRST = Knob(since_first=True)
WHERE = Knob(identity=False)  # where things lie, not what was run
HOW = Knob(identity=False)  # how the same numbers are computed (to rounding), like the thread count

# Settings (design/settings.py). A field without a row is a later knob: Knob().
SETTINGS = {
    **dict.fromkeys(("stage", "models", "seeds", "dropout_rates", "token_limits", "steps", "passes",
                     "stream_token_caps", "decays", "stage_steps", "train", "plateau_delta", "vocab_size",
                     "document_order", "order_seed", "text_field", "device", "grid_seed", "calibrations"), FIRST),
    **dict.fromkeys(("cache_dir", "use_cached_data", "corpus", "corpus_glob", "lock_from"), WHERE),
    "splits": Knob(absent=LEGACY_SPLITS),  # 0.3 had no test split
    "compile": HOW,  # a study begun eager resumes compiled
}

# The training knobs (training/trainer.py TrainConfig), stored under `train`.
TRAINING = {
    **dict.fromkeys(("batch_size", "seq_len", "lr", "min_lr_ratio", "warmup_steps", "weight_decay", "grad_clip",
                     "eval_batches", "eval_every", "log_every"), FIRST),
    "dropout_masks": Knob(absent=LEGACY_MASKS),  # 0.2's masks, before the setting existed
}
LATER = Knob()


def absent_value(knob: Knob, default):
    return default if knob.absent is DEFAULT else knob.absent


def identity(values: dict, table: dict[str, Knob], defaults: dict) -> dict:
    """The knobs of `values` that make up a study's identity, by the rule in the module doc."""
    out = {}
    for name, value in values.items():
        knob = table.get(name, LATER)
        if knob.identity and (knob.since_first or value != absent_value(knob, defaults[name])):
            out[name] = value
    return out


def stored_defaults(table: dict[str, Knob], defaults: dict) -> dict:
    """What a stored config made before a knob existed means by its absence."""
    return {name: absent_value(table.get(name, LATER), default) for name, default in defaults.items()
            if not table.get(name, LATER).since_first}
