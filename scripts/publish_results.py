"""Copy a workflow's (or one stage's) small artefacts into docs/results/<name>/, draw its figures as SVG.

    .venv/bin/python scripts/publish_results.py runs/cpu_workflow docs/results/cpu_workflow

Copies workflow.json and, per stage, config.json, metrics.jsonl, summary.csv, model_selection.*,
probe.*, comparison.*, claims.*, interaction.*, primary.*, trajectory.*, map.*, pressure_law*.json (not the storage, the trace or the HTML reports), and draws from
the run folder (the trace included): the screen's and confirm's curves in p, the probe's curves
per cap and its law, the stream's judged loss (test loss, or validation in studies made before the
test split) and dropout rate against tokens per arm, each decay's paired difference from the best
static rate per cap and, with fixed-pool controls, the interaction; a map's heatmaps of p* and of
its gain over p = 0; and writes tables.md, the
result tables as Markdown (the declared primary claims first). Every number comes from the run.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropout_decay.model.law import predict  # noqa: E402
from dropout_decay.common.svg import heat_chart, line_chart  # noqa: E402
from dropout_decay.report.figures import model_name  # noqa: E402
from publish_stream import colour, fmt, stream_charts, stream_tables  # noqa: E402

KEEP = ("config.json", "metrics.jsonl", "trajectory.json", "trajectory.csv", "summary.csv", "summary.json", "model_selection.csv", "model_selection.json",
        "probe.csv", "probe.json", "comparison.csv", "comparison.json", "claims.csv", "claims.json", "export.json",
        "interaction.csv", "interaction.json", "primary.csv", "primary.json", "map.csv", "map.json", "pressure_law.json",
        "pressure_law_interaction.json")


def curves_in_p(stage_dir: Path, title: str) -> str:
    series, band = [], []
    for i, rec in enumerate(json.loads((stage_dir / "model_selection.json").read_text())):
        std = [s or 0.0 for s in rec["std_val_loss"]]
        series.append({"name": f"{model_name(rec['model'], rec['model_shape'])}, best p={rec['best_p']:g}", "x": rec["rates"],
                       "y": rec["mean_val_loss"], "markers": True, "colour": colour(i)})
        band.append({"x": rec["rates"], "low": [m - s for m, s in zip(rec["mean_val_loss"], std)],
                     "high": [m + s for m, s in zip(rec["mean_val_loss"], std)], "colour": colour(i)})
    return line_chart(series, title, "dropout p", "validation loss (nats), mean ± std over seeds", band)


def probe_charts(stage_dir: Path) -> tuple[str, str]:
    probe = json.loads((stage_dir / "probe.json").read_text())
    series = [{"name": f"{c['cap']:,} tokens: p* = {c['p_star']:.3f}", "x": c["curve"]["rates"],
               "y": c["curve"]["mean_val_loss"], "markers": True, "colour": colour(i)} for i, c in enumerate(probe["caps"])]
    curves = line_chart(series, "probe: validation loss against p at each cap (mean over seeds)", "dropout p",
                        "validation loss (nats)")
    d = [c["tokens_per_param"] for c in probe["caps"]]
    p = [c["p_star"] for c in probe["caps"]]
    law = probe["law"]
    series = [{"name": "per-cap optimum p*", "x": d, "y": p, "markers": True, "colour": "#000000", "width": 0}]
    band = [{"x": d, "low": [c["p_star_low"] for c in probe["caps"]], "high": [c["p_star_high"] for c in probe["caps"]],
             "colour": "#000000"}] if all(c["p_star_low"] is not None for c in probe["caps"]) else []
    if law.get("form"):
        grid = [d[0] * (d[-1] / d[0]) ** (k / 40) for k in range(41)]
        series.append({"name": f"{law['form']} law", "x": grid, "y": [predict(law, x) for x in grid], "colour": colour(1)})
    title = f"probe: p*(D), D = tokens per parameter ({law['form'] or 'no'} law; band: bootstrap 95%)"
    return curves, line_chart(series, title, "D (tokens per parameter)", "best static p", band)


def map_charts(stage_dir: Path) -> dict[str, str]:
    """Per model, p* and its gain over p = 0 on the (U, passes) grid, each cell labelled with its interval."""
    charts = {}
    cells = pd.DataFrame(json.loads((stage_dir / "map.json").read_text())["cells"])
    for model, at in cells.groupby("model", sort=True):
        us = [f"{u:,}" for u in sorted(at["unique_tokens"].unique())]
        ks = [f"{k:g}" for k in sorted(at["passes"].unique())]
        p_star = {(f"{r.unique_tokens:,}", f"{r.passes:g}"): (r.p_star, f"{r.p_star:g}\n[{r.p_star_low:g}, {r.p_star_high:g}]")
                  for r in at.itertuples()}
        gain = {(f"{r.unique_tokens:,}", f"{r.passes:g}"): (r.gain, f"{r.gain:+.3f}\n[{r.gain_low:+.3f}, {r.gain_high:+.3f}]")
                for r in at.itertuples()}
        suffix = "" if cells["model"].nunique() == 1 else f"_{model}"
        charts[f"map_p_star{suffix}.svg"] = heat_chart(us, ks, p_star, f"map, {model}: best static rate p* per cell "
                                                       "(bootstrap 95% interval over seeds)", "unique tokens U", "passes over U")
        charts[f"map_gain{suffix}.svg"] = heat_chart(us, ks, gain, f"map, {model}: val loss at p* − at p = 0 (nats; below 0: "
                                                     "dropout helps)", "unique tokens U", "passes over U", diverging=True)
    return charts


def map_tables(stage_dir: Path) -> list[str]:
    record = json.loads((stage_dir / "map.json").read_text())
    out = ["### map", "", record["description"] + ".", "",
           "| model | U | passes | steps | x | y | p* | 95% interval | gain vs p=0 (val) | 95% interval | gain (test) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    out += [f"| {c['model']} | {c['unique_tokens']:,} | {c['passes']:g} | {c['steps']} | {c['x']:.3f} | {c['y']:.3f} | "
            f"{c['p_star']:g} | [{c['p_star_low']:g}, {c['p_star_high']:g}] | {fmt(c['gain'])} | "
            f"[{fmt(c['gain_low'])}, {fmt(c['gain_high'])}] | {fmt(c.get('test_gain'))} |" for c in record["cells"]]
    out += ["", "| law | formula | held out: mean abs. error of p* | regret (mean, max; nats) | best static rate: error, regret | "
            "one-variable law: error, regret |", "| --- | --- | --- | --- | --- | --- |"]
    for form, law in record["laws"].items():
        h = law["held_out"]
        out.append(f"| {form} | {law['formula']} | {h['law']['p_star_mae']:.3f} | {h['law']['regret_mean']:.4f}, "
                   f"{h['law']['regret_max']:.4f} | {h['best_static']['p_star_mae']:.3f} (p = {law['best_static_rate']:g}), "
                   f"{h['best_static']['regret_mean']:.4f} | {h['one_variable_law']['p_star_mae']:.3f}, "
                   f"{h['one_variable_law']['regret_mean']:.4f} |")
    return out + ["", f"Held out: {next(iter(record['laws'].values()))['held_out']['method']}.", ""]


def tables(src: dict[str, Path], run: Path, trace: pd.DataFrame | None = None) -> str:
    """The result tables as Markdown, every number read from the run's artefacts."""
    out = [f"<!-- written by scripts/publish_results.py from {run} -->", ""]
    for stage in ("screen", "confirm"):
        if stage not in src:
            continue
        out += [f"### {stage}", "", "| model | tokens | p: mean val loss (std) | best p | plateau | dip / seed std | verdict |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in json.loads((src[stage] / "model_selection.json").read_text()):
            curve = "; ".join(f"{p:g}: {m:.4f} ({fmt(s)})" for p, m, s in zip(r["rates"], r["mean_val_loss"], r["std_val_loss"]))
            out.append(f"| {model_name(r['model'], r['model_shape'])} | {r['cap']:,} | {curve} | {r['best_p']:g} | "
                       f"{r['plateau_low']:g}–{r['plateau_high']:g} | {fmt(r['dip_over_std'], '.1f')} | {r['verdict']} |")
        out.append("")
    if "probe" in src:
        probe = json.loads((src["probe"] / "probe.json").read_text())
        out += ["### probe", "", "| cap | D (tokens/param) | best p | refined p* (scale) | 95% interval | plateau | val − train gap at p=0 |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for c in probe["caps"]:
            out.append(f"| {c['cap']:,} | {c['tokens_per_param']:.4f} | {c['best_p']:g} | {c['p_star']:.4f} "
                       f"({c['scale'] or 'edge'}) | [{fmt(c['p_star_low'])}, {fmt(c['p_star_high'])}] | "
                       f"{' '.join(f'{p:g}' for p in c['plateau'])} | {fmt(c['gap_at_p0'])} |")
        law = probe["law"]
        if law.get("form"):
            out += ["", f"Law: **{law['form']}**, a = {law['params']['a']:.4f}, b = {law['params']['b']:.4f} "
                    f"(95% bootstrap: a {fmt(law['interval']['a'][0])}–{fmt(law['interval']['a'][1])}, "
                    f"b {fmt(law['interval']['b'][0])}–{fmt(law['interval']['b'][1])}); leave-one-cap-out MSE: "
                    + ", ".join(f"{c['form']} {c['loo_mse']:.2e}" for c in law["candidates"])
                    + "; residuals of the chosen form: " + ", ".join(f"{x:+.4f}" for x in next(
                        c["residuals"] for c in law["candidates"] if c["form"] == law["form"])) + "."]
        else:
            out += ["", f"No law: {law['reason']}."]
        d = probe.get("difficulty") or {}
        if d:
            out += ["", f"Corpus difficulty: {d['bytes_per_token']:.3f} bytes and {d['chars_per_token']:.3f} characters per token, "
                    f"unigram entropy {d['unigram_entropy_bits']:.3f} bits per token."]
        out.append("")
    if "map" in src:
        out += map_tables(src["map"])
    if "stream" in src and (src["stream"] / "comparison.json").is_file():
        out += stream_tables(src["stream"], trace)
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("target", type=Path)
    ap.add_argument("--map", type=Path, help="a map's folder (with map.json): its p* beside a stream's rates, cap by cap")
    args = ap.parse_args()
    args.target.mkdir(parents=True, exist_ok=True)
    if (args.run / "workflow.json").is_file():
        record = json.loads((args.run / "workflow.json").read_text())
        shutil.copy(args.run / "workflow.json", args.target / "workflow.json")
    else:  # a single stage's run folder
        record = {"stages": {json.loads((args.run / "config.json").read_text())["stage"]: {"folder": "."}}}
    src = {stage: args.run / entry["folder"] for stage, entry in record["stages"].items()}
    for stage, folder in src.items():
        (args.target / stage).mkdir(exist_ok=True)
        for name in KEEP:
            if (folder / name).is_file():
                shutil.copy(folder / name, args.target / stage / name)
    figures = {}
    for stage in ("screen", "confirm"):
        if stage in src:
            figures[f"{stage}_curves.svg"] = curves_in_p(src[stage], f"{stage}: validation loss against dropout p")
    if "probe" in src:
        figures["probe_curves.svg"], figures["probe_law.svg"] = probe_charts(src["probe"])
    if "map" in src:
        figures |= map_charts(src["map"])
    trace = None
    if "stream" in src and (src["stream"] / "comparison.json").is_file():
        trace = pd.read_json(src["stream"] / "trace.jsonl", lines=True)
        figures |= stream_charts(src["stream"], trace, args.map)
    for name, svg in figures.items():
        (args.target / name).write_text(svg)
    (args.target / "tables.md").write_text(tables(src, args.run, trace))
    print(f"copied {len(src)} stage(s) and drew {len(figures)} figures into {args.target}")


if __name__ == "__main__":
    main()
