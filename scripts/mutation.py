"""Mutation testing of the core modules with mutmut, and the score per module (not in CI: slow).

    .venv/bin/pip install "mutmut>=3.3"       # once
    .venv/bin/python scripts/mutation.py      # runs `mutmut run`, then prints the scores

mutmut copies the package into mutants/, makes one small change at a time (a flipped operator,
a changed constant, a dropped call) and runs the tests that cover the changed function; a
mutant the tests do not notice "survived". The modules and the fast tests it runs are in
pyproject.toml under [tool.mutmut]. Prints, per module, killed / (killed + survived + timeout +
no tests), and every survivor, to be judged equivalent (no behaviour changed) or a gap in the tests.
Rerunning continues where mutmut stopped; `rm -r mutants` starts over.
"""

import argparse
import json
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", 37: "killed", None: "not checked"}


def scores() -> tuple[dict[str, Counter], dict[str, list[str]]]:
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        module = str(meta.relative_to(ROOT / "mutants")).removesuffix(".meta")
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            status = STATUS.get(code, "suspicious")
            counts[module][status] += 1
            if status in ("survived", "no tests", "timeout", "suspicious"):
                survivors[module].append(f"{name} ({status})")
    return counts, survivors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-children", type=int, default=2, help="mutants tested in parallel")
    ap.add_argument("--report-only", action="store_true", help="print the scores of the last run")
    args = ap.parse_args()
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent))
    if not mutmut:
        sys.exit('mutmut is not installed: .venv/bin/pip install "mutmut>=3.3"')
    if not args.report_only:
        subprocess.run([mutmut, "run", "--max-children", str(args.max_children)], cwd=ROOT)
    counts, survivors = scores()
    total = Counter()
    print(f"{'module':40} {'killed':>7} {'survived':>8} {'other':>6} {'score':>7}")
    for module, c in counts.items():
        total += c
        judged = c["killed"] + c["survived"] + c["timeout"] + c["no tests"] + c["suspicious"]
        print(f"{module:40} {c['killed']:7} {c['survived']:8} {judged - c['killed'] - c['survived']:6} "
              f"{c['killed'] / max(judged, 1):7.1%}")
    judged = total["killed"] + total["survived"] + total["timeout"] + total["no tests"] + total["suspicious"]
    print(f"{'all':40} {total['killed']:7} {total['survived']:8} {judged - total['killed'] - total['survived']:6} "
          f"{total['killed'] / max(judged, 1):7.1%}")
    for module, names in survivors.items():
        print(f"\n{module}: {len(names)} not killed (see each with `mutmut show NAME`)")
        for name in names:
            print(f"  {name}")


if __name__ == "__main__":
    main()
