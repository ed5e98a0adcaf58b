"""`backtest FIT_RUN... --predict RUN... --output-dir DIR`: score the pressure law on saved results
before training anything new (analysis/backtest.py).

A study is a run folder holding one study (study.db), an exported stage folder (config.json and
metrics.jsonl, as committed under docs/results/), or `--fit-storage/--predict-storage URL STUDY`.
Writes backtest.csv (one row per predicted cell), backtest.json (the law, the summary, what was
read), pressure_law.json (the law fitted, which a NAME:pressure:LAW_JSON arm follows) and
backtest.html (predicted against observed p*).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..common import UsageError, check_output_dir
from .parsing import Parser, prog


def parser() -> Parser:
    ap = Parser(prog=f"{prog()} backtest", description=__doc__.splitlines()[0])
    ap.add_argument("fit", nargs="*", metavar="FIT_RUN", help="studies to fit the law on")
    ap.add_argument("--fit-storage", nargs=2, action="append", default=[], metavar=("URL", "STUDY"))
    ap.add_argument("--predict", nargs="+", default=[], metavar="RUN", help="studies whose cell optima are predicted")
    ap.add_argument("--predict-storage", nargs=2, action="append", default=[], metavar=("URL", "STUDY"))
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--form", choices=("first-order", "interaction"), default="first-order")
    ap.add_argument("--allow-other-regime", action="store_true",
                    help="use studies from another regime too (each of their rows says what differs)")
    return ap


def read_study(where: str, study: str | None = None) -> tuple[str, dict, "object"]:
    """(label, config, metrics frame) of a stored study, from its storage or its export."""
    import pandas as pd

    folder = Path(where)
    if study is None and not (folder / "study.db").is_file():
        try:
            config = json.loads((folder / "config.json").read_text())
            rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as e:
            raise UsageError(f"{where}: neither a run folder with study.db nor an exported stage "
                             f"(config.json and metrics.jsonl): {type(e).__name__}") from None
        return str(folder), config, pd.DataFrame(rows)
    from ..report import analyse
    from .tools import locate

    args = argparse.Namespace(run_dir=None if study else where, storage=where if study else None, study=study,
                              output_dir=None)
    found, _ = locate(args)
    a = analyse(found)
    if a.frame is None:
        raise UsageError(f"{where}: no point has completed yet")
    return (f"{where} {study}" if study else str(folder)), a.config, a.frame


def cells_of(label: str, config: dict, frame) -> list[dict]:
    from ..analysis import by_replicate, map_cells

    frame = by_replicate(frame)
    if "order_seed" not in frame:
        frame = frame.assign(order_seed=0)
    cells = map_cells(frame, config)
    if not cells:
        raise UsageError(f"{label}: no cell with two or more rates to compare (a {config['stage']} of static rates, "
                         "or a stream with static arms, is needed)")
    return cells


def backtest_command(rest: list[str]) -> int:
    from ..analysis import backtest_summary, predict_cells
    from ..report import write_backtest
    from ..model import regime_differences, regime_of

    args = parser().parse_args(rest)
    fits = [(f, None) for f in args.fit] + [tuple(p) for p in args.fit_storage]
    predicts = [(p, None) for p in args.predict] + [tuple(p) for p in args.predict_storage]
    if not fits or not predicts:
        raise UsageError("backtest needs studies to fit on (FIT_RUN... or --fit-storage) and to predict "
                         "(--predict RUN... or --predict-storage)")
    out = Path(args.output_dir)
    check_output_dir(out)
    studies = [(role, *read_study(*w)) for role, ws in (("fit", fits), ("predict", predicts)) for w in ws]
    reference = regime_of(studies[0][2])
    fit_cells, predict, rates, read = [], [], set(), []
    for role, label, config, frame in studies:
        differs = regime_differences(reference, regime_of(config))
        if differs and not args.allow_other_regime:
            raise UsageError(f"{label} is from another regime than {studies[0][1]} ({'; '.join(differs)}); "
                             "pass --allow-other-regime to use it anyway (its rows are marked)")
        cells = cells_of(label, config, frame)
        read.append({"role": role, "study": label, "stage": config["stage"], "cells": len(cells),
                     "other_regime": "; ".join(differs)})
        if role == "fit":
            fit_cells += cells
            rates |= {r for c in cells for r in c["curve"]["rates"]}
        else:
            predict.append((label, cells, "; ".join(differs)))
    try:
        law, rows = predict_cells(fit_cells, predict, args.form, (min(rates), max(rates)))
    except ValueError as e:
        raise UsageError(f"cannot fit the law on the fit studies: {e}") from None
    law |= {"regime": reference, "fitted_on": [r for r in read if r["role"] == "fit"]}
    s = backtest_summary(rows)
    write_backtest(out, law, rows, read, s)
    print(f"backtest: {law['formula']} fitted on {len(fit_cells)} cells; predicted {s['cells']} cells: mean |error of p*| "
          f"{s['p_star_mae']:.3f}, regret {s['regret_mean']:.4f} nats (best static rate of the fit: "
          f"{s['best_static_regret_mean']:.4f}); wrote {out}/backtest.csv")
    return 0
