"""Step time of today's model against the model.py of an earlier commit, in one run (noisy machines).

    .venv/bin/python scripts/bench_model_change.py --commit 3c39f04 --dropout 0

Loads the model module (`dropout_decay/model/gpt.py`, before 0.4 `dropout_decay/model.py`) as it was at COMMIT next to today's, gives both the same seed,
batch and optimiser, and times fwd + bwd + AdamW steps in interleaved rounds; prints the median
ratio today/then per shape. Used to show that the cheaper dropout left p = 0 no slower.
"""

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dropout_decay.sweep import cpu  # noqa: E402
from dropout_decay.model import gpt as today  # noqa: E402


FLAT = {"errors": "common.errors", "masks": "model.masks"}  # where the flat package's modules live now


def model_at(commit: str):
    """The model module of COMMIT beside today's package (its imports pointed at today's modules)."""
    def show(path: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True)

    found = show("dropout_decay/model/gpt.py")
    source, name = found.stdout, "dropout_decay.model.gpt_then"
    if found.returncode != 0:  # before 0.4 the package was flat
        source, name = show("dropout_decay/model.py").stdout, "dropout_decay.model_then"
        for flat, now in FLAT.items():
            source = source.replace(f"from .{flat} import", f"from dropout_decay.{now} import")
    path = Path(tempfile.mkdtemp()) / "model_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", default="3c39f04", help="the earlier model (default: v0.1)")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--models", nargs="+", default=["8x8x256", "12x8x384"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    args = ap.parse_args()
    cpu.keep_freed_memory()
    then, vocab, B, T = model_at(args.commit), 4096, args.batch_size, args.seq_len
    print(f"model.py today vs {args.commit}, p = {args.dropout}, cpu threads {torch.get_num_threads()}, B={B}, T={T}")
    for shape in args.models:
        runs = {}
        for name, module in (("then", then), ("today", today)):
            torch.manual_seed(0)
            m = module.GPT(module.parse_model_spec(shape), vocab, T).train()
            m.set_dropout(args.dropout)
            runs[name] = (m, torch.optim.AdamW(m.parameters(), lr=1e-3))
        x, y = torch.randint(0, vocab, (B, T)), torch.randint(0, vocab, (B, T))

        def steps(m, opt, n):
            t0 = time.perf_counter()
            for _ in range(n):
                m(x, y).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            return time.perf_counter() - t0

        for m, opt in runs.values():
            steps(m, opt, 3)  # warm-up
        ratios = []
        for _ in range(args.rounds):
            t = {name: steps(m, opt, 5) for name, (m, opt) in runs.items()}
            ratios.append(t["today"] / t["then"])
        print(f"{shape}: step time today/then, median of {args.rounds} interleaved rounds {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
