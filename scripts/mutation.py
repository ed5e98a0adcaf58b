"""Mutation testing of the core modules with mutmut, and the score per module (not in CI: slow).

    .venv/bin/pip install "mutmut>=3.3"            # once
    .venv/bin/python scripts/mutation.py           # every mutant: hours on 2 cores
    .venv/bin/python scripts/mutation.py --sample 25 --seed 3   # 25 random mutants per module

mutmut copies the package into mutants/, makes one small change at a time (a flipped operator, a
changed constant, a dropped call) and runs the tests that cover the changed function; a mutant the
tests do not notice "survived". The modules and the fast tests it runs are in pyproject.toml under
[tool.mutmut]. mutmut's own timeout counts CPU time, so a mutant that makes a test wait forever (a
work loop that never sees its grid finish) would stall a child; such children are killed after
--wall-timeout seconds and counted as "timeout". mutmut forks each mutant's run from a process that
has already run torch, so everything runs on one thread (OMP_NUM_THREADS=1): a forked child inherits
no OpenMP threads and would hang waiting for them. `--sample N` checks a uniform random sample of N
mutants per module, in rounds that give every module a share (25 per module: about 10 minutes on 2
cores). `--verify` gives every survivor a second opinion outside mutmut's machinery: the mutant is
written into the real source file, the tests mutmut lists for it (or the whole selection) run on it,
one mutant at a time, and the file is restored; pytest's exit code decides (1 or 2: killed, 0:
survives, anything else: an error that leaves mutmut's verdict). It re-tests the timeouts too, with
--verify-timeout: a child can hang for reasons of mutmut's own (the OpenMP fork hang above filled
earlier runs with "timeouts"), so a timeout is not evidence that the tests noticed. Prints, per
module, killed / (killed + survived + timeout + no tests), and every survivor, to be judged
equivalent (no behaviour changed) or a gap in the tests. Rerunning continues where mutmut stopped;
`rm -r mutants` starts over.

A --verify stopped by SIGKILL or a shutdown leaves its mutant in the source: check
`git diff dropout_decay` afterwards (SIGTERM and Ctrl-C restore it).
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", 37: "killed", None: "not checked",
          -9: "timeout"}  # -9: killed by the wall-clock watchdog below


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


def watchdog(limit_s: float, stop: threading.Event) -> None:
    """SIGKILL mutmut's children that have run longer than limit_s of wall time."""
    started: dict[int, float] = {}
    while not stop.wait(5):
        found = subprocess.run(["pgrep", "-f", "^mutmut: "], capture_output=True, text=True).stdout.split()
        for pid in map(int, found):
            if time.time() - started.setdefault(pid, time.time()) > limit_s:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def unchecked_by_module() -> dict[str, list[str]]:
    return {meta.name: [k for k, v in json.loads(meta.read_text())["exit_code_by_key"].items() if v is None]
            for meta in sorted((ROOT / "mutants").rglob("*.py.meta"))}


def run(mutmut: str, args) -> None:
    base = [mutmut, "run", "--max-children", str(args.max_children)]
    # One thread in mutmut's process: it runs the tests once, then forks a child per mutant, and
    # GNU OpenMP's thread pool does not survive a fork: a child's first parallel torch op then
    # waits for threads that are not there (every model and train "timeout" of earlier runs).
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if not args.sample:
        subprocess.run(base, cwd=ROOT, env=env)
        return
    if not (ROOT / "mutants").exists():  # let mutmut generate the mutants and its test map first
        subprocess.run([*base, "no-such-mutant"], cwd=ROOT, capture_output=True, env=env)
    rng = random.Random(args.seed)
    chosen = {m: rng.sample(keys, min(args.sample, len(keys))) for m, keys in unchecked_by_module().items()}
    step = 10
    for start in range(0, args.sample, step):
        batch = [k for keys in chosen.values() for k in keys[start:start + step]]
        if batch:
            print(f"mutation: round {start // step + 1}, {len(batch)} mutants", file=sys.stderr, flush=True)
            subprocess.run([*base, *batch], cwd=ROOT, stdout=subprocess.DEVNULL, env=env)


def module_of(mutant: str) -> str:
    """dropout_decay.model.gpt.x_drop__mutmut_3 -> dropout_decay/model/gpt.py"""
    return mutant.rsplit(".", 1)[0].replace(".", "/") + ".py"


def verify(mutmut: str, names: list[str], limit_s: float) -> dict[str, str]:
    """Each mutant applied to the source in turn: 'killed' if its tests fail, 'survived' if they
    pass, 'timeout', or 'error (...)' when pytest could not run them."""
    selection = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
    verdicts = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` restores the source
    for name in names:
        source = ROOT / module_of(name)
        original = source.read_bytes()
        tests = subprocess.run([mutmut, "tests-for-mutant", name], cwd=ROOT, capture_output=True, text=True).stdout.split()
        try:
            subprocess.run([mutmut, "apply", name], cwd=ROOT, check=True, capture_output=True)
            pytest = subprocess.Popen([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                       *(tests or selection)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
            rc = pytest.wait(timeout=limit_s)  # 1: a test failed, 2: collection failed; 4, 5: a bad test list
            verdicts[name] = {0: "survived", 1: "killed", 2: "killed"}.get(rc, f"error (pytest exit {rc})")
        except subprocess.TimeoutExpired:  # the tests' own children (workers, servers) go with it
            os.killpg(pytest.pid, signal.SIGKILL)
            pytest.wait()
            verdicts[name] = "timeout"
        finally:
            source.write_bytes(original)
        print(f"verify: {name} {verdicts[name]}", file=sys.stderr, flush=True)
    return verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-children", type=int, default=2, help="mutants tested in parallel")
    ap.add_argument("--sample", type=int, default=0, help="check N random unchecked mutants per module (0: all)")
    ap.add_argument("--seed", type=int, default=0, help="of the sample")
    ap.add_argument("--wall-timeout", type=float, default=150, help="seconds a mutant's tests may take")
    ap.add_argument("--report-only", action="store_true", help="print the scores of the last run")
    ap.add_argument("--verify", action="store_true", help="re-test every survivor and timeout on the real source")
    ap.add_argument("--verify-timeout", type=float, default=600, help="seconds one re-test may take")
    args = ap.parse_args()
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent))
    if not mutmut:
        sys.exit('mutmut is not installed: .venv/bin/pip install "mutmut>=3.3"')
    if not args.report_only and not args.verify:
        stop = threading.Event()
        threading.Thread(target=watchdog, args=(args.wall_timeout, stop), daemon=True).start()
        try:
            run(mutmut, args)
        finally:
            stop.set()
    counts, survivors = scores()
    if args.verify:  # mutmut's survivors and timeouts, re-tested on the real source
        doubted = {n.split()[0]: n.split()[1].strip("()") for found in survivors.values() for n in found
                   if n.endswith(("(survived)", "(no tests)", "(timeout)"))}
        for name, status in verify(mutmut, list(doubted), args.verify_timeout).items():
            if status.startswith("error"):
                print(f"verify: {name}: {status}; mutmut's verdict kept", file=sys.stderr)
                continue
            if doubted[name] == "no tests" and status == "survived":
                continue  # mutmut found no test that runs it; re-running the whole selection agreed
            module = module_of(name)
            counts[module][doubted[name]] -= 1
            counts[module][status] += 1
            survivors[module] = [n for n in survivors[module] if n.split()[0] != name]
            if status != "killed":
                survivors[module].append(f"{name} ({status}, verified)")
    print(f"{'module':32} {'checked':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'timeout':>7} {'other':>5} "
          f"{'score':>6} {'+timeouts':>9}")
    for module, c in [*counts.items(), ("all", sum(counts.values(), Counter()))]:
        judged = c["killed"] + c["survived"] + c["timeout"] + c["no tests"] + c["suspicious"]
        print(f"{module:32} {judged:7} {c['killed']:6} {c['survived']:8} {c['no tests']:8} {c['timeout']:7} "
              f"{c['suspicious']:5} {c['killed'] / max(judged, 1):6.1%} {(c['killed'] + c['timeout']) / max(judged, 1):9.1%}")
    print("score: killed / checked; +timeouts: counting a mutant whose tests ran out of time as caught")
    for module, names in survivors.items():
        if not names:
            continue
        print(f"\n{module}: {len(names)} not killed (see each with `mutmut show NAME`)")
        for name in names:
            print(f"  {name}")


if __name__ == "__main__":
    main()
