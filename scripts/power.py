"""How many replicates a stream needs: the spread of paired differences in a pilot stream (a gate)
turned into the replicates that detect a given effect, and the effect each replicate count detects.

    .venv/bin/python scripts/power.py runs/decisive_gate --effect 0.015 --claims 3

A stream's claims are paired by replicate (seed x order seed): what matters is the standard
deviation, across replicates, of the difference between two arms' losses. A pilot of static rates
alone gives it for every pair of statics at every cap, and for the mean over the caps (the
trajectory). A decay's difference from a static is taken to spread like that of the two statics
nearest the best one; the fixed-pool interaction (a difference of two such differences) like
sqrt(2) times it. With few pilot replicates the spread itself is uncertain, so the script also
prints its one-sided 80 % upper bound (chi-square) and sizes the run on that too.
The tests are one-sided paired t-tests at alpha / claims (Holm's first threshold), 80 % power.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropout_decay.analysis.comparison import mde  # noqa: E402


def read_metrics(run: Path, metric: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The growing stream's static arms: `metric` and validation loss per replicate and cap
    (rows), arm (columns), and the columns that name a replicate."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    df = pd.DataFrame(rows)
    df = df[df["arm"].str.startswith("static:") & ~df["arm"].str.endswith("@fixed")]
    keys = ["seed", "order_seed"] if "order_seed" in df and df["order_seed"].notna().all() else ["seed"]
    per_cap = df.pivot_table(index=keys + ["cap"], columns="arm", values=metric, aggfunc="first")
    chosen = df.pivot_table(index=keys + ["cap"], columns="arm", values="val_loss", aggfunc="first")
    return per_cap, chosen, keys


def spreads(per_cap: pd.DataFrame, chosen: pd.DataFrame, keys: list[str]) -> list[dict]:
    """Per cap (and the trajectory): the best static on validation, the sd of its paired
    difference from each of the two statics nearest it in rate, and the number of replicates."""
    def rate(arm):
        return float(arm.split(":")[1])
    out = []
    caps = sorted(per_cap.index.get_level_values("cap").unique())
    views = [(c, per_cap.xs(c, level="cap"), chosen.xs(c, level="cap")) for c in caps]
    views.append(("trajectory", per_cap.groupby(level=keys).mean(), chosen.groupby(level=keys).mean()))
    for cap, loss, val in views:
        best = min(loss.columns, key=lambda a: (val[a].mean(), a))
        near = sorted((a for a in loss.columns if a != best), key=lambda a: abs(rate(a) - rate(best)))[:2]
        sds = {a: float((loss[best] - loss[a]).std(ddof=1)) for a in near}
        out.append({"cap": cap, "best_static": best, "n": len(loss), "sd_against": sds, "sd": max(sds.values())})
    return out


def replicates_needed(effect: float, sd: float, alpha: float, power: float = 0.8, most: int = 100) -> int | None:
    for n in range(2, most + 1):
        if mde(n, sd, alpha, power) <= effect:
            return n
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a stream run folder with metrics.jsonl (static arms are used)")
    ap.add_argument("--effect", type=float, default=0.015, help="the true difference to detect, nats (default 0.015)")
    ap.add_argument("--claims", type=int, default=3, help="declared claims: Holm's first threshold is alpha/claims")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--metric", default="val_loss", help="the loss whose spread is used (default val_loss)")
    ap.add_argument("--replicates", type=int, nargs="+", default=[3, 6, 9, 12], help="replicate counts to price")
    args = ap.parse_args()
    per_cap, chosen, keys = read_metrics(args.run, args.metric)
    alpha = args.alpha / args.claims
    print(f"power from {args.run} ({args.metric}); one-sided paired t at alpha {args.alpha:g}/{args.claims} = {alpha:.4f}, "
          f"80% power, effect {args.effect:g} nats")
    for s in spreads(per_cap, chosen, keys):
        df = s["n"] - 1
        upper = s["sd"] * math.sqrt(df / stats.chi2.ppf(0.2, df)) if df > 0 else math.nan
        against = ", ".join(f"{a} {v:.4f}" for a, v in s["sd_against"].items())
        cap = s["cap"] if isinstance(s["cap"], str) else f"{s['cap']:,}"
        print(f"cap {cap}: best static {s['best_static']}; sd of its paired difference from {against} "
              f"({s['n']} replicates); 80% upper bound {upper:.4f}")
        for label, sd in (("decay vs static", s["sd"]), ("decay vs static, upper", upper),
                          ("interaction", s["sd"] * math.sqrt(2)), ("interaction, upper", upper * math.sqrt(2))):
            need = replicates_needed(args.effect, sd, alpha)
            priced = ", ".join(f"n={n}: {mde(n, sd, alpha):.4f}" for n in args.replicates)
            print(f"  {label:24s} sd {sd:.4f}: detectable {priced}; n for {args.effect:g}: {need or '> 100'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
