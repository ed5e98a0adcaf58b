"""Rebuild an Optuna storage for every committed stage under docs/results/ from the files that were
published (config.json and metrics.jsonl; the storage itself is not committed), then export each
study with the package's own `export` command.

    .venv/bin/python scripts/restore_committed.py OUT_DIR

OUT_DIR/<run>/<stage>/ then holds what today's code makes of those results: diff two such folders
made by two commits to show that a change leaves every committed answer byte for byte as it was
(the trace, which is not committed, is empty in both). Uses Optuna's public API only, so the same
script runs against any version of the package.
"""

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
SEGMENT_KEYS = ("segment", "cap", "step", "tokens", "dropout_in_force", "train_loss", "val_loss", "gap", "test_loss")


def committed_stages() -> list[Path]:
    return sorted(p.parent for p in RESULTS.glob("*/*/config.json") if (p.parent / "metrics.jsonl").is_file())


def restore(stage_dir: Path, url: str, name: str) -> None:
    """One study holding the stage's config and a COMPLETE trial per published grid point."""
    config = json.loads((stage_dir / "config.json").read_text())
    rows = [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines() if line]
    by_trial = defaultdict(list)
    for r in rows:
        by_trial[r["trial"]].append(r)
    study = optuna.create_study(study_name=name, storage=url, direction="minimize")
    study.set_user_attr("config", config)
    grid = config["grid"]
    for number in sorted(by_trial):
        segments = sorted(by_trial[number], key=lambda r: r["segment"])
        first = segments[0]
        params = {k: (first["cap"] if k == "tokens" else first[k]) for k in grid}
        final = segments[-1]
        attrs = {k: final.get(k) for k in ("train_loss", "val_loss", "gap", "test_loss")}
        attrs["segments"] = [{k: s.get(k) for k in SEGMENT_KEYS} for s in segments]
        study.add_trial(create_trial(
            state=TrialState.COMPLETE, value=final["val_loss"], params=params,
            distributions={k: CategoricalDistribution(grid[k]) for k in grid}, user_attrs=attrs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for stage_dir in committed_stages():
        run, stage = stage_dir.parent.name, stage_dir.name
        out = args.out / run / stage
        out.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(out / 'study.db').resolve()}"
        restore(stage_dir, url, f"{run}-{stage}")
        subprocess.run([sys.executable, "-m", "dropout_decay.study", "export", "--storage", url, "--study",
                        f"{run}-{stage}", "--output-dir", str(out)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        print(f"{run}/{stage}: {len(list(out.iterdir()))} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
