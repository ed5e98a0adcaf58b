"""A stream's figures and tables for docs/results (scripts/publish_results.py calls these).

Figures: the judged loss and the dropout rate against tokens seen per arm; each decay's paired
difference from the best static per cap; the interaction with the fixed-pool twins; and, cap by
cap, every arm's rate beside the stream's own best static rate and a map's p* (with `--map`),
and every arm's judged loss relative to the best static of its cap. Tables: the declared claims,
the claims per cap and on the trajectory, the pairs, the interaction, and one table in the shape
of the seed's published one (condition, path over the caps, mean final loss, its sd, mean
trajectory loss) on validation and on test. Every number is read from the run's artefacts.
"""

import json
import math
from pathlib import Path

import pandas as pd

from dropout_decay.common.svg import COLOURS, line_chart


CLIP = 0.08  # nats: the loss-by-cap figure's ceiling, so the differences near 0 stay readable


def colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def fmt(x, spec=".4f") -> str:
    return "–" if x is None or (isinstance(x, float) and x != x) else format(x, spec)


def p_text(p) -> str:
    """A p-value: three decimals, or two significant digits below 0.001."""
    return fmt(p, ".1e" if p is not None and p == p and p < 1e-3 else ".3f")


def cap_text(cap) -> str:
    return cap if isinstance(cap, str) else f"{cap:,}"


def judged(stage_dir: Path) -> tuple[str, str]:
    """The stream's judged loss (test loss; validation in studies made before the test split)."""
    rows = json.loads((stage_dir / "comparison.json").read_text())
    metric = rows[0].get("metric", "val_loss") if rows else "val_loss"
    return metric, "test loss" if metric == "test_loss" else "validation loss"


def _style(arm: str) -> str:
    return "dot" if arm.endswith("@fixed") else "solid" if arm.startswith("static") else "dash"


def _arms(frame: pd.DataFrame) -> list[str]:
    return sorted((a for a in frame["arm"].unique() if not a.endswith("@fixed")), key=lambda a: (not a.startswith("static"), a))


def segment_rates(trace: pd.DataFrame) -> pd.DataFrame:
    """Per growing arm and segment, the mean dropout rate in force (the first replicate's trace)."""
    train = trace[(trace["kind"] == "train") & (trace["seed"] == trace["seed"].min())]
    if "order_seed" in train:
        train = train[train["order_seed"] == train["order_seed"].min()]
    return train.groupby(["arm", "segment"])["dropout_in_force"].mean().unstack()


def _over_tokens(stage_dir: Path, trace: pd.DataFrame, metric: str, name: str) -> dict[str, str]:
    evals = trace[(trace["kind"] == "eval") & (trace["state"] == "COMPLETE")]
    arms = _arms(evals)
    loss = [{"name": arm, "x": list(m.index), "y": list(m), "colour": colour(i), "dash": _style(arm)}
            for i, arm in enumerate(arms) for m in [evals[evals["arm"] == arm].groupby("tokens")[metric].mean()]]
    train = trace[(trace["kind"] == "train") & (trace["seed"] == trace["seed"].min())]
    rates = []
    for i, arm in enumerate(arms):
        one = train[train["arm"] == arm].sort_values("tokens").drop_duplicates("tokens")
        rates.append({"name": arm, "x": list(one["tokens"]), "y": list(one["dropout_in_force"]), "colour": colour(i),
                      "dash": _style(arm)})
    return {"stream_loss.svg": line_chart(loss, f"stream: {name} against tokens seen (growing caps; mean over replicates)",
                                          "tokens seen", f"{name} (nats)"),
            "stream_dropout.svg": line_chart(rates, "stream: dropout rate in force against tokens seen", "tokens seen",
                                             "dropout p")}


def _paired(stage_dir: Path, name: str) -> dict[str, str]:
    rows = pd.DataFrame(json.loads((stage_dir / "comparison.json").read_text()))
    if rows.empty:  # statics alone (a gate): nothing is paired
        return {}
    best = rows[rows["best_static"] & (rows.get("pool", "growing") == "growing")]
    n, caps = int(best["n"].max()), sorted(best["cap"].unique())
    zero = {"x": [caps[0], caps[-1]], "y": [0, 0], "colour": "#000000", "dash": "dot", "width": 1}
    series, band = [], []
    for i, (arm, one) in enumerate(best.groupby("decay_arm", sort=True)):
        one = one.sort_values("cap")
        series.append({"name": f"{arm} − best static", "x": list(one["cap"]), "y": list(one["mean_diff"]),
                       "markers": True, "colour": colour(i + 4)})
        band.append({"x": list(one["cap"]), "low": list(one["ci_low"]), "high": list(one["ci_high"]), "colour": colour(i + 4)})
    charts = {"stream_paired.svg": line_chart(
        series + [zero | {"name": "no difference"}],
        f"stream: Δ {name}, decay − best static rate, per cap (band: 95% t-interval, {n} replicates)",
        "token cap of the segment", f"Δ {name} (nats); below 0: decay better", band)}
    if (stage_dir / "interaction.json").is_file():
        did = pd.DataFrame(json.loads((stage_dir / "interaction.json").read_text()))
        series, band = [], []
        for i, (arm, one) in enumerate(did.groupby("decay_arm", sort=True) if len(did) else []):
            one = one.sort_values("cap")
            series.append({"name": f"{arm}: DiD", "x": list(one["cap"]), "y": list(one["mean_diff"]), "markers": True,
                           "colour": colour(i + 4)})
            band.append({"x": list(one["cap"]), "low": list(one["ci_low"]), "high": list(one["ci_high"]), "colour": colour(i + 4)})
        if series:
            charts["stream_interaction.svg"] = line_chart(
                series + [zero | {"name": "no interaction"}],
                "stream: (decay − best static) growing − (the same) on the final pool from step 0 (95% t-interval)",
                "token cap of the segment", f"DiD, {name} (nats); below 0: decay helps more as data grows", band)
    return charts


def map_p_star(map_dir: Path | None, caps: list[int], seen: list[float]) -> dict[int, float]:
    """The map's p* at the cells a stream's caps fall on (same U, same passes since step 0)."""
    if map_dir is None:
        return {}
    cells = json.loads((map_dir / "map.json").read_text())["cells"]
    return {cap: c["p_star"] for cap, tokens in zip(caps, seen) for c in cells
            if c["unique_tokens"] == cap and math.isclose(c["passes"], tokens / cap, rel_tol=0.02)}


def _by_cap(stage_dir: Path, trace: pd.DataFrame, metric: str, name: str, map_dir: Path | None) -> dict[str, str]:
    m = pd.read_json(stage_dir / "metrics.jsonl", lines=True)
    m = m[~m["arm"].str.endswith("@fixed")]
    caps = sorted(m["cap"].unique())
    x = [math.log10(c) for c in caps]
    val = m.pivot_table(index="cap", columns="arm", values="val_loss", aggfunc="mean")
    loss = m.pivot_table(index="cap", columns="arm", values=metric, aggfunc="mean")
    statics = [a for a in val.columns if a.startswith("static:")]
    best = val[statics].idxmin(axis=1)
    rates = segment_rates(trace)
    arms = _arms(m)
    series = [{"name": arm, "x": x, "y": [rates.loc[arm, i] for i in range(len(caps))], "colour": colour(i),
               "dash": _style(arm), "markers": True} for i, arm in enumerate(arms) if not arm.startswith("static")]
    series.append({"name": "best static here (val)", "x": x, "y": [float(best[c].split(":")[1]) for c in caps],
                   "colour": "#000000", "markers": True, "width": 3})
    seen = m.groupby("cap")["tokens"].mean()
    on_map = map_p_star(map_dir, caps, [seen[c] for c in caps])
    if on_map:
        series.append({"name": "the map's p* (same U, passes)", "x": [math.log10(c) for c in on_map], "y": list(on_map.values()),
                       "colour": "#7f7f7f", "markers": True, "width": 0})
    charts = {"stream_rates_by_cap.svg": line_chart(
        series, "stream: each decay's mean rate per cap beside the best static rate (validation) and the map's p*",
        "log10 cap (unique tokens)", "dropout p")}
    relative = [{"name": arm, "x": x, "y": [min(loss.loc[c, arm] - loss.loc[c, best[c]], CLIP) for c in caps],
                 "colour": colour(i), "dash": _style(arm), "markers": True} for i, arm in enumerate(arms)]
    charts["stream_loss_by_cap.svg"] = line_chart(
        relative, f"stream: {name} minus the cap's best static rate's (chosen on val), mean over replicates; "
                  f"above +{CLIP:g} drawn at +{CLIP:g}", "log10 cap (unique tokens)",
        f"Δ {name} (nats); below 0: better than the best static")
    return charts


def stream_charts(stage_dir: Path, trace: pd.DataFrame, map_dir: Path | None = None) -> dict[str, str]:
    metric, name = judged(stage_dir)
    return (_over_tokens(stage_dir, trace, metric, name) | _paired(stage_dir, name)
            | _by_cap(stage_dir, trace, metric, name, map_dir))


def seed_shaped(stream: Path, trace: pd.DataFrame) -> list[str]:
    """Per growing arm: the path over the caps, the mean and sd over replicates of the last cap's
    loss and the mean of the trajectory (the loss averaged over caps), on validation and test."""
    m = pd.read_json(stream / "metrics.jsonl", lines=True)
    m = m[~m["arm"].str.endswith("@fixed")]
    rates, last = segment_rates(trace), m["cap"].max()
    keys = ["arm", "seed", "order_seed"] if "order_seed" in m else ["arm", "seed"]
    out = ["| condition | mean dropout per cap | final val | sd | trajectory val | final test | sd | trajectory test |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = []
    for arm in _arms(m):
        one = m[m["arm"] == arm]
        final, trajectory = one[one["cap"] == last], one.groupby(keys)[["val_loss", "test_loss"]].mean()
        path = " → ".join(f"{rates.loc[arm, i]:.2f}" for i in sorted(rates.columns))
        rows.append((final["test_loss"].mean(), f"| {arm} | {path} | {final['val_loss'].mean():.4f} | "
                     f"{final['val_loss'].std(ddof=1):.4f} | {trajectory['val_loss'].mean():.4f} | "
                     f"{final['test_loss'].mean():.4f} | {final['test_loss'].std(ddof=1):.4f} | {trajectory['test_loss'].mean():.4f} |"))
    return out + [r for _, r in sorted(rows)]


def best_by_cap(stream: Path) -> list[str]:
    """Cap by cap: the pressure coordinates, every static rate's mean validation loss and the best."""
    m = pd.read_json(stream / "metrics.jsonl", lines=True)
    m = m[m["arm"].str.startswith("static:") & ~m["arm"].str.endswith("@fixed")]
    params = json.loads((stream / "config.json").read_text())["models"][0]["parameters"]
    m = m.assign(x=(params / m["cap"]).map(math.log10), y=(m["tokens"] / m["cap"]).map(math.log10))
    val = m.pivot_table(index=["cap", "x", "y"], columns="arm", values="val_loss", aggfunc="mean")
    arms = sorted(val.columns, key=lambda a: float(a.split(":")[1]))
    out = ["| cap | x | y | " + " | ".join(arms) + " | best static (val) |", "| --- " * (len(arms) + 4) + "|"]
    for (cap, x, y), row in val[arms].iterrows():
        out.append(f"| {cap:,} | {x:.3f} | {y:.3f} | " + " | ".join(f"{v:.4f}" for v in row) + f" | {row.idxmin()} |")
    return out


def stream_tables(stream: Path, trace: pd.DataFrame | None = None) -> list[str]:
    metric, name = judged(stream)
    out = ["### stream: where the best static rate lies, cap by cap (validation loss, mean over replicates)", "",
           *best_by_cap(stream), ""]
    primary = json.loads((stream / "primary.json").read_text()) if (stream / "primary.json").is_file() else []
    if primary:
        out += ["### stream: the primary claims (declared before the run; one Holm family)", "",
                f"| claim | cap | against | estimate ({name}, nats) | 95% interval | p | p (Holm) | mde_80 | holds |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        out += [f"| {r['claim']} | {cap_text(r['cap'])} | {r['against']} | {fmt(r['estimate'])} | [{fmt(r['ci'][0])}, {fmt(r['ci'][1])}] | "
                f"{p_text(r['p'])} | {p_text(r['p_holm'])} | {fmt(r['mde_80'])} | {'yes' if r['holds'] else 'no'} |"
                for r in primary]
        out += ["", "Everything below is exploratory.", ""]
    if trace is not None:
        out += [f"### stream: in the shape of the seed's table (mean over replicates; sd over replicates)", "",
                *seed_shaped(stream, trace), ""]
    if not (stream / "claims.json").is_file():  # statics alone (a gate)
        return out
    claims = json.loads((stream / "claims.json").read_text())
    if (stream / "trajectory.json").is_file():
        claims += json.loads((stream / "trajectory.json").read_text())["claims"]
    out += [f"### stream: does a decay beat every static rate? ({name})", "",
            "| decay arm | cap | beats every static (IUT, Holm) | deciding static | Δ vs it | 95% interval | p (Holm) | replicates winning vs all |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in claims:
        out.append(f"| {c['decay_arm']} | {cap_text(c['cap'])} | {'yes' if c['beats_every_static'] else 'no'} | "
                   f"{c['deciding_static']} | {fmt(c['deciding_mean_diff'])} | [{fmt(c['deciding_ci'][0])}, "
                   f"{fmt(c['deciding_ci'][1])}] | {fmt(c['p_iut_holm'], '.3f')} | {c['wins_against_all']}/{c['n']} |")
    out += ["", "| decay arm | cap (a twin: the growing stream's cap of its segment) | pool | against | Δ mean | 95% interval | "
            "p one-sided (Holm) | mde_80 | P(improve) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = json.loads((stream / "comparison.json").read_text())
    growing_cap = {r["segment"]: r["cap"] for r in rows if r.get("pool", "growing") == "growing"}
    for r in rows:
        if r["best_static"] or not r["other_is_static"]:
            label = f"best static {r['static_arm']}" if r["best_static"] else r["static_arm"]
            cap = growing_cap.get(r["segment"], r["cap"])
            out.append(f"| {r['decay_arm']} | {cap_text(cap)} | {r.get('pool', 'growing')} | {label} | {fmt(r['mean_diff'])} | "
                       f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] | {fmt(r['p_better'], '.3f')} ({fmt(r['p_holm'], '.3f')}) | "
                       f"{fmt(r.get('mde_80'))} | {r['wins']}/{r['n']} |")
    if (stream / "interaction.json").is_file():
        rows = json.loads((stream / "interaction.json").read_text())
        if (stream / "trajectory.json").is_file():
            rows += json.loads((stream / "trajectory.json").read_text())["interaction"]
        out += ["", "Interaction: DiD = (decay − best static) on the growing stream − (decay@fixed − best static@fixed) "
                "on the final pool from step 0; below 0, the decay's advantage is larger when data grows.", "",
                "| decay arm | cap | best static | growing Δ | fixed Δ | DiD | 95% interval | p (Holm) | mde_80 | verdict |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        out += [f"| {r['decay_arm']} | {cap_text(r['cap'])} | {r['best_static']} | {fmt(r['growing_diff_mean'])} | "
                f"{fmt(r['fixed_diff_mean'])} | {fmt(r['mean_diff'])} | [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] | "
                f"{fmt(r['p_holm'], '.3f')} | {fmt(r.get('mde_80'))} | {r['verdict']} |" for r in rows]
    summary = pd.read_csv(stream / "summary.csv")
    column = f"{'test' if metric == 'test_loss' else 'val'}_loss"
    last = summary[summary["segment"] == summary["segment"].max()].sort_values(f"{column}_mean")
    out += ["", f"{name.capitalize()} at the end of the last segment ({int(summary['cap'].max()):,} tokens), mean ± std over "
            "replicates (@fixed: the final pool from step 0):", ""]
    out += [f"* {r['arm']}: {r[column + '_mean']:.4f} ± {r[column + '_std']:.4f} (val − train gap {r['gap_mean']:.3f})"
            for r in last.to_dict("records")]
    return out + [""]
