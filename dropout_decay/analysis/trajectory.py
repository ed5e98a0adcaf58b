"""The seed's "trajectory" loss: each replicate's loss averaged over every cap of the stream.

The seed's later report judged its streams twice: on the loss at the last prefix and on the mean
over the prefixes. Here that mean is one more "cap" (`cap = "trajectory"`) with the same
statistics as every other: per replicate, the mean over caps of each arm's loss; the best static
is the one of lowest mean validation trajectory; differences paired by replicate on the judged
metric; "beats every static" an intersection-union test; the interaction against the
fixed-pool twins' trajectories. A point that has not reached every cap is left out rather than
averaged over fewer caps.
"""

from __future__ import annotations

import pandas as pd

from .comparison import claims, compare_arms, replicates
from .interaction import fixed_pool_interaction

TRAJECTORY = "trajectory"
LOSSES = ("train_loss", "val_loss", "test_loss")
_PLACEHOLDER = -1  # the segment and cap the comparison functions see, relabelled afterwards


def trajectory_frame(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per model x arm x replicate holding the mean of each loss over every cap."""
    keys = ["model", "arm", *replicates(metrics)]
    n_caps = metrics["segment"].nunique()
    whole = metrics.groupby(keys)["segment"].transform("nunique") == n_caps
    mean = metrics[whole].groupby(keys, as_index=False)[[c for c in LOSSES if c in metrics]].mean()
    return mean.assign(segment=_PLACEHOLDER, cap=_PLACEHOLDER)


def _relabel(rows: list[dict]) -> list[dict]:
    return [r | {"segment": None, "cap": TRAJECTORY} for r in rows]


def compare_trajectory(metrics: pd.DataFrame, decay_arms: list[str], calibrated_arms: list[str] = (),
               metric: str = "val_loss") -> dict[str, list[dict]]:
    """The paired comparison, the claims and the interaction on the trajectory (empty lists for
    a stream of one cap, where the trajectory is the last cap)."""
    if metrics["segment"].nunique() < 2:
        return {"comparison": [], "claims": [], "interaction": []}
    frame = trajectory_frame(metrics)
    comparison = compare_arms(frame, decay_arms, calibrated_arms, metric)
    return {"comparison": _relabel(comparison), "claims": _relabel(claims(comparison)),
            "interaction": _relabel(fixed_pool_interaction(frame, decay_arms, metric))}
