"""Peak memory of one training step, measured against the dry run's estimate (training/memory.py).

Each shape trains in a fresh child process (Linux: peak RSS from /proc, its high-water mark reset
after a warm-up step): the step's memory is that peak less the RSS before the model was built.
Printed per shape: the estimate, the measurement, their ratio and the step time, at dropout 0 and,
at 0.1 (dropout keeps the attention's mask and weights for backward), for each micro-batch, with
the step time against the whole batch's.

    .venv/bin/python scripts/bench_memory.py                 # the seed's three models at its batch
    .venv/bin/python scripts/bench_memory.py --small         # CPU-sized shapes, seconds each
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dropout_decay.model.gpt import parse_model_spec  # noqa: E402
from dropout_decay.training.memory import step_bytes  # noqa: E402

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
import torch
from dropout_decay.model.gpt import GPT, parse_model_spec
from dropout_decay.training.train import TrainConfig, accumulate, make_optimizer

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

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


def measure(spec: str, vocab: int, batch: int, seq_len: int, p: float, micro: int) -> dict:
    code = CHILD.format(root=str(ROOT), spec=spec, vocab=vocab, batch=batch, seq_len=seq_len, p=p, micro=micro)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="CPU-sized shapes (vocab 1024, 16 x 64) instead of the seed's")
    args = ap.parse_args()
    if args.small:
        shapes, vocab, batch, seq_len, micros = ["2x4x96", "3x4x96", "2x4x128", "4x4x128"], 1024, 16, 64, (16,)
    else:
        shapes, vocab, batch, seq_len, micros = ["8x8x256", "12x8x384", "16x8x384"], 4096, 32, 256, (32, 16, 8, 4)
    print(f"vocab {vocab}, batch {batch} x {seq_len}; memory of one training step beyond the process's baseline")
    print(f"{'model':<10} {'p':>4} {'micro':>5} {'estimate MiB':>13} {'measured MiB':>13} {'ratio':>6} {'step s':>7} {'vs whole':>8}")
    for shape in shapes:
        for p in (0.0, 0.1):
            whole = None
            for micro in micros if p else micros[:1]:
                got = measure(shape, vocab, batch, seq_len, p, micro)
                whole = whole or got["seconds"]
                estimate = step_bytes(parse_model_spec(shape), vocab, micro, seq_len, p > 0)
                print(f"{shape:<10} {p:>4} {micro:>5} {estimate / 2**20:>13,.0f} {got['peak'] / 2**20:>13,.0f} "
                      f"{estimate / got['peak']:>6.2f} {got['seconds']:>7.2f} {got['seconds'] / whole:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
