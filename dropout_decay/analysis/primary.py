"""Judge the primary claims a stream declared before it trained (design/declared.py).

Each claim is one test on the judged metric (test loss), at the cap it names (`trajectory`: on
the mean over every cap, trajectory.py):
* `every_static`: the intersection-union p of the claims table (its largest pairwise p);
* `pair`: the paired comparison's one-sided p (reversed when the claim puts the static first);
* `interaction`: the interaction's one-sided p of DiD < 0.
The declared claims are one family: Holm's correction across them, and `mde_80` at the family's
first threshold (ALPHA / number of claims), so a null result says what it rules out.
"""

from __future__ import annotations

import math

from ..design import parse_claim
from .comparison import ALPHA, holm, mde
from .trajectory import TRAJECTORY


def _at(rows: list[dict], cap) -> list[dict]:
    if not rows:
        return []
    cap = max(r["cap"] for r in rows) if cap == "last" else cap
    return [r for r in rows if r["cap"] == cap]


def _test(claim: dict, comparison: list[dict], claims: list[dict], interaction: list[dict]) -> dict | None:
    arm, other = claim["arm"], claim["other"]
    if claim["kind"] == "every_static":
        row = next((r for r in _at([c for c in claims if c["decay_arm"] == arm], claim["cap"])), None)
        return row and {"cap": row["cap"], "estimate": row["deciding_mean_diff"], "ci": row["deciding_ci"],
                        "p": row["p_iut"], "n": row["n"], "std": row["deciding_std"], "against": row["deciding_static"]}
    if claim["kind"] == "interaction":
        row = next((r for r in _at([r for r in interaction if r["decay_arm"] == arm], claim["cap"])), None)
        return row and {"cap": row["cap"], "estimate": row["mean_diff"], "ci": [row["ci_low"], row["ci_high"]],
                        "p": row["p_better"], "n": row["n"], "std": row["std_diff"], "against": row["best_static"]}
    growing = [r for r in comparison if r["pool"] == "growing"]
    forward = _at([r for r in growing if r["decay_arm"] == arm and r["static_arm"] == other], claim["cap"])
    if forward:
        r = forward[0]
        return {"cap": r["cap"], "estimate": r["mean_diff"], "ci": [r["ci_low"], r["ci_high"]], "p": r["p_better"],
                "n": r["n"], "std": r["std_diff"], "against": other}
    reverse = _at([r for r in growing if r["decay_arm"] == other and r["static_arm"] == arm], claim["cap"])
    if reverse:
        r = reverse[0]
        return {"cap": r["cap"], "estimate": -r["mean_diff"], "ci": [-r["ci_high"], -r["ci_low"]], "p": r["p_worse"],
                "n": r["n"], "std": r["std_diff"], "against": other}
    return None


def judge(declared: dict | None, comparison: list[dict], claims: list[dict], interaction: list[dict],
          trajectory: dict[str, list[dict]] | None = None) -> list[dict]:
    """Every declared claim with its estimate, interval, p and Holm-adjusted p; `trajectory` holds
    the comparison, claims and interaction on the mean over caps (trajectory.py)."""
    texts = (declared or {}).get("primary", [])
    out = []
    for text in texts:
        claim = parse_claim(text)
        if claim["cap"] == TRAJECTORY:
            t = trajectory or {"comparison": [], "claims": [], "interaction": []}
            claim = claim | {"cap": "last"}  # the trajectory tables hold one "cap"
            found = _test(claim, t["comparison"], t["claims"], t["interaction"])
            found = found and found | {"cap": TRAJECTORY}
        else:
            found = _test(claim, comparison, claims, interaction)
        found = found or {"cap": None, "estimate": math.nan, "ci": [math.nan, math.nan],
                                                                   "p": math.nan, "n": 0, "std": math.nan, "against": None}
        metric = next((r["metric"] for r in comparison if "metric" in r), "val_loss")
        out.append({"claim": text, "kind": claim["kind"], "arm": claim["arm"], "metric": metric, **found})
    for row, p in zip(out, holm([r["p"] for r in out])):
        row |= {"p_holm": p, "holds": bool(p < ALPHA), "mde_80": mde(row["n"], row["std"], ALPHA / max(len(out), 1)),
                "declared": "primary"}
    return out
