"""Peak memory and time of one training step, against the dry run's estimates.

Each case trains in a fresh child process (Linux: peak RSS from /proc, its high-water mark reset
after a warm-up step): the step's memory is that peak less the RSS before the model was built.
Per model: dropout 0 on the whole batch; dropout 0.1 in micro-batches of 32, 16, 8 and 4 as the
attention now runs (its one-byte DropKey mask kept for backward, the masked attention recomputed)
and, as "before", with the float mask autograd kept through 0.5 (the plain masked call); each with
the estimate of training/memory.py and the step time against the whole batch's before. First,
alone on the machine, the seed's screen is dry-run without a budget and with `--memory-budget`:
its per-model figures are printed beside the measurements at the micro-batch it chose, with the
dry run's own peak RSS.

    .venv/bin/python scripts/bench_memory.py                 # the seed's three models at its batch
    .venv/bin/python scripts/bench_memory.py --small         # CPU-sized shapes, seconds each
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dropout_decay.model.gpt import parse_model_spec  # noqa: E402
from dropout_decay.training.memory import step_bytes  # noqa: E402

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
import torch
from dropout_decay.model import gpt
from dropout_decay.model.gpt import GPT, parse_model_spec
from dropout_decay.training.trainer import TrainConfig, accumulate, make_optimizer

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

if {before}:
    gpt.attend_dropping_keys = gpt._masked_attention  # autograd keeps the float mask, as through 0.5
torch.manual_seed(0)
base = rss("VmRSS:")
model = GPT(parse_model_spec({spec!r}), {vocab}, {seq_len})
model.set_dropout({p})
opt = make_optimizer(model, TrainConfig(), "cpu")
x = torch.randint(0, {vocab}, ({batch}, {seq_len} + 1))
def step():
    accumulate(model, x, {micro})
    opt.step()
    opt.zero_grad(set_to_none=True)
step()
open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark
t = time.perf_counter()
step()
print(json.dumps({{"peak": rss("VmHWM:") - base, "seconds": time.perf_counter() - t}}))
"""


def measure(spec: str, vocab: int, batch: int, seq_len: int, p: float, micro: int, before: bool = False) -> dict:
    code = CHILD.format(root=str(ROOT), spec=spec, vocab=vocab, batch=batch, seq_len=seq_len, p=p, micro=micro, before=before)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def dry_run(shapes: list[str], budget: float | None) -> tuple[dict[str, dict], int]:
    """The dry run's figures per model (ms/step with dropout, memory, micro-batch) and its own peak RSS."""
    argv = [sys.executable, "-m", "dropout_decay.study", "screen", "--device", "cpu", "--use-cached-data",
            "--models", *shapes, "--seeds", "1", "--dropout-rates", "0", "0.1", "0.2", "--token-limits", "100000",
            "--steps", "10", "--dry-run"] + (["--memory-budget", str(budget)] if budget else [])
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not every child's
        child.returncode = status
        out.seek(0)
        text = out.read()
    figures = {}
    for m in re.finditer(r"(\S+): (\d+) ms/step(?: \((\d+) with dropout\))?(?: \[[^\]]*\])?, training memory about ([\d.]+) GiB"
                         r"(?: in micro-batches of (\d+))?", text):
        figures[m[1]] = {"ms": int(m[3] or m[2]), "gib": float(m[4]), "micro": int(m[5] or 0) or None}
    if len(figures) != len(shapes):
        sys.exit(f"no per-model figures in the dry run's output:\n{text[-3000:]}")
    return figures, usage.ru_maxrss * 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="CPU-sized shapes (vocab 1024, 16 x 64) instead of the seed's")
    ap.add_argument("--budget", type=float, default=3.0, help="the dry run's --memory-budget in GiB (default 3)")
    args = ap.parse_args()
    if args.small:
        shapes, vocab, batch, seq_len, micros, befores = ["2x4x96", "3x4x96", "2x4x128"], 1024, 16, 64, (16, 4), (16,)
    else:
        shapes, vocab, batch, seq_len, micros, befores = ["8x8x256", "12x8x384", "16x8x384"], 4096, 32, 256, (32, 16, 8, 4), (32, 8)
    print(f"vocab {vocab}, batch {batch} x {seq_len}; memory of one training step beyond the process's baseline")
    print(f"{'model':<10} {'attention':<9} {'p':>4} {'micro':>5} {'estimate MiB':>13} {'measured MiB':>13} {'ratio':>6} "
          f"{'step s':>7} {'vs before':>9}")
    dry_runs = {} if args.small else {budget: dry_run(shapes, budget) for budget in (None, args.budget)}
    measured = {}
    for shape in shapes:
        cases = [("", 0.0, batch, False)] + [("before", 0.1, m, True) for m in befores] + [("now", 0.1, m, False) for m in micros]
        whole_before = None
        for label, p, micro, before in cases:
            got = measure(shape, vocab, batch, seq_len, p, micro, before)
            measured[shape, label, micro] = got
            if label == "before" and micro == batch:
                whole_before = got["seconds"]
            estimate = step_bytes(parse_model_spec(shape), vocab, micro, seq_len, p > 0)
            ratio = f"{got['seconds'] / whole_before:>9.2f}" if whole_before and p else f"{'':>9}"
            print(f"{shape:<10} {label:<9} {p:>4} {micro:>5} {estimate / 2**20:>13,.0f} {got['peak'] / 2**20:>13,.0f} "
                  f"{estimate / got['peak']:>6.2f} {got['seconds']:>7.2f} {ratio}", flush=True)
    if args.small:
        return
    state = max(16 * parse_model_spec(shape).n_params(vocab) for shape in shapes)
    for budget, (figures, peak) in dry_runs.items():
        flag = f"--memory-budget {budget:g}" if budget else "no budget: timed in parts of at most 1 GiB of activations"
        print(f"\nthe dry run (screen --dry-run, {flag}; rates 0, 0.1, 0.2) against the measurements above; "
              f"its own peak RSS {peak / 2**30:.2f} GiB (the largest model's weights, gradients and AdamW state: {state / 2**30:.2f} GiB)")
        print(f"{'model':<10} {'micro':>5} {'dry-run GiB':>11} {'measured GiB':>12} {'ratio':>6} {'dry-run s':>9} {'measured s':>10} {'ratio':>6}")
        for shape, got in figures.items():
            micro = got["micro"] or batch
            real = measured[shape, "now", micro]
            print(f"{shape:<10} {micro:>5} {got['gib']:>11.2f} {real['peak'] / 2**30:>12.2f} "
                  f"{got['gib'] * 2**30 / real['peak']:>6.2f} {got['ms'] / 1e3:>9.2f} {real['seconds']:>10.2f} "
                  f"{got['ms'] / 1e3 / real['seconds']:>6.2f}")


if __name__ == "__main__":
    main()
