"""Run every shipped smoke config on the default corpus, as a newcomer would, and check that it
does what its file says: the quickstart and probe_smoke finish with an answer (probe_smoke with a
law a calibrated arm can follow), map_smoke has a cell where p* > 0 and one where p* = 0 and a
pressure law a pressure arm can follow, workflow_smoke reaches the stream, each within the time its
file's first lines state. Too long for the test suite (about ten minutes on 2 cores), so a script;
tests/cli/test_workflow.py runs the same machinery on the test corpus.

    .venv/bin/python scripts/check_shipped.py [--keep DIR]
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "dropout_decay.study"]

# name, command, what must hold once it ran (folder -> problem or None)
CHECKS = [
    ("quickstart", ["run", "quickstart"],
     lambda out: None if (out / "model_selection.json").is_file() else "no model_selection.json"),
    ("probe_smoke", ["run", "probe_smoke"],
     lambda out: None if json.loads((out / "probe.json").read_text())["law"].get("form") else "the probe fitted no law"),
    ("map_smoke", ["run", "map_smoke"], lambda out: map_answer(out)),
    ("workflow_smoke", ["workflow", "workflow_smoke"],
     lambda out: None if json.loads((out / "workflow.json").read_text())["status"] == "done"
     else f"stopped: {json.loads((out / 'workflow.json').read_text())['stopped']}"),
]


def map_answer(out: Path) -> str | None:
    cells = json.loads((out / "map.json").read_text())["cells"]
    if not any(c["p_star"] > 0 for c in cells) or not any(c["p_star"] == 0 for c in cells):
        return f"p* is {sorted({c['p_star'] for c in cells})} in every cell: the map shows no boundary"
    return None if (out / "pressure_law.json").is_file() else "no pressure_law.json"


def stated_seconds(name: str) -> float | None:
    """The time a config's header promises ('in about two minutes', 'under a minute')."""
    words = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
    head = " ".join((ROOT / "studies" / f"{name}.toml").read_text().splitlines()[:4])
    match = re.search(r"(?:about|under|in) (a|one|two|three|four|five|\d+) minutes?", head)
    return None if not match else 60 * (words.get(match.group(1)) or int(match.group(1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="leave the run folders here instead of a temporary folder")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="shipped-"))
    failures = 0
    print(f"{'config':<16} {'wall':>7} {'stated':>7}  result")
    for name, command, holds in CHECKS:
        out = root / name
        t = time.perf_counter()
        done = subprocess.run([*CLI, *command, "--output-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t
        problem = f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}" if done.returncode else holds(out)
        stated = stated_seconds(name)
        if problem is None and stated and wall > stated * 1.25:
            problem = f"took {wall:.0f} s, the file says {stated:.0f} s"
        failures += problem is not None
        answer = next((line for line in reversed(done.stderr.splitlines()) if line.startswith("answer:")), "")
        print(f"{name:<16} {wall:>6.0f}s {stated or float('nan'):>6.0f}s  {problem or 'ok'}  {answer[:120]}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
