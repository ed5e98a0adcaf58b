"""How fast a grid point trains, against eager, one process, and the machine's own limit; every
figure measured in this one run, since these machines are noisy.

1. Per shape (1x2x32, 3x4x96, 8x8x256, and 12x8x384 without --quick), at p = 0 and p = 0.1:
   training tokens per second eager and compiled (training/compiled.py), and their ratio.
2. Two local jobs of one thread each against one process of every thread (3x4x96, p = 0.1).
3. Achieved FLOP/s (6 x parameters x tokens per second, as the issue counts it, and with the
   attention's FLOPs too) as a fraction of the fp32 matmul peak measured here (a 2048^3 matmul
   on every thread).
4. Points per hour of studies/seed_scale_model.toml's screen grid (54 points) run as 0.6.0 ran it
   (--compile off --jobs 1) against today's defaults, whole commands side by side (not --quick;
   alone with --screen-only), each with an empty compile cache (TORCHINDUCTOR_CACHE_DIR), so the
   compiled run pays every compile a first run on a fresh machine pays.

Every comparison prints one line with the word `ratio`; the table goes to
docs/results/benchmarks/speed.md (with --write).

    .venv/bin/python scripts/bench_speed.py --quick      # under 3 minutes on 2 cores
    .venv/bin/python scripts/bench_speed.py --write      # every shape, and the table committed
    .venv/bin/python scripts/bench_speed.py --screen-only --write   # 4. alone (about 30 minutes on 2 cores)
"""

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from dropout_decay.model import GPT, parse_model_spec  # noqa: E402
from dropout_decay.sweep import cpu  # noqa: E402
from dropout_decay.training import TrainConfig, compiled_loss, make_optimizer, optimizer_step  # noqa: E402

VOCAB, BATCH, SEQ = 1024, 16, 64  # the CPU studies' batch: 16 x 64 tokens
TIMED_S = 3.0  # seconds of steps per measurement, after the warm-up (and compile)


def training_step(shape: str, p: float):
    """A fresh model of this shape at rate p, its optimizer and a batch."""
    torch.manual_seed(0)
    model = GPT(parse_model_spec(shape), VOCAB, SEQ)
    model.train()
    model.set_dropout(p)
    opt = make_optimizer(model, TrainConfig(), "cpu")
    x = torch.randint(0, VOCAB, (BATCH, SEQ + 1))
    return model, opt, x


def tokens_per_second(shape: str, p: float, compiled: bool, seconds: float = TIMED_S) -> tuple[float, float]:
    """(training tokens per second after the warm-up, the warm-up step's seconds)."""
    model, opt, x = training_step(shape, p)
    loss = compiled_loss if compiled else None
    t = time.perf_counter()
    optimizer_step(model, opt, x, None, 1.0, loss)
    first = time.perf_counter() - t
    steps, t = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - t < seconds:
        optimizer_step(model, opt, x, None, 1.0, loss)
        steps += 1
    return steps * BATCH * SEQ / (time.perf_counter() - t), first


def _job(shape: str, p: float, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    queue.put(tokens_per_second(shape, p, compiled=False, seconds=2 * TIMED_S)[0])


def jobs_against_one(shape: str = "3x4x96", p: float = 0.1) -> tuple[float, float]:
    """(tokens/s of two one-thread processes together, of one process on every core), eager."""
    ctx = multiprocessing.get_context("spawn")
    results = {}
    for n, threads in ((2, 1), (1, cpu.cores())):
        queue = ctx.Queue()
        procs = [ctx.Process(target=_job, args=(shape, p, threads, queue)) for _ in range(n)]
        for proc in procs:
            proc.start()
        results[n] = sum(queue.get() for _ in procs)
        for proc in procs:
            proc.join()
    return results[2], results[1]


def matmul_peak(n: int = 2048) -> float:
    """fp32 FLOP/s of an n^3 matmul on every thread: the best of several."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


SCALE_SCREEN = ["--device", "cpu", "--vocab-size", "1024", "--models", "2x4x48", "2x4x96", "3x4x96", "--seeds", "1", "2",
                "--dropout-rates", "0", "0.02", "0.05", "0.08", "0.1", "0.14", "0.2", "0.3", "0.5", "--token-limits",
                "85700", "--steps", "274", "--batch-size", "16", "--seq-len", "64", "--lr", "0.01", "--warmup-steps", "14",
                "--eval-batches", "16", "--eval-every", "27", "--log-every", "25"]  # studies/seed_scale_model.toml's [screen]


def screen_points_per_hour(extra: list[str]) -> tuple[float, float]:
    """(points per hour, wall seconds) of seed_scale_model's screen grid (54 points) on the default
    corpus, the whole command."""
    cli = [sys.executable, "-m", "dropout_decay.study"]
    subprocess.run([*cli, "cache", "--vocab-size", "1024"], cwd=ROOT, capture_output=True)  # built once, apart
    with tempfile.TemporaryDirectory() as d:
        argv = [*cli, "screen", *SCALE_SCREEN, "--output-dir", f"{d}/run", *extra]
        env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": f"{d}/compiled"}  # nothing compiled before
        t = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if done.returncode:
            sys.exit(f"the screen failed:\n{done.stderr[-3000:]}")
        points = len([line for line in (Path(d) / "run" / "metrics.jsonl").read_text().splitlines() if line])
    return points * 3600 / wall, wall


def profile(shape: str = "8x8x256", p: float = 0.1, steps: int = 5) -> str:
    """Where a compiled step's time goes: torch.profiler's table over a few steps after the compile."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    model, opt, x = training_step(shape, p)
    for _ in range(3):
        optimizer_step(model, opt, x, None, 1.0, compiled_loss)
    with profiler(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            optimizer_step(model, opt, x, None, 1.0, compiled_loss)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="three shapes, no screen comparison (under 3 minutes on 2 cores)")
    ap.add_argument("--write", action="store_true", help="write the table to docs/results/benchmarks/speed.md")
    ap.add_argument("--profile", action="store_true", help="also torch.profiler's table of a compiled 8x8x256 step at p = 0.1")
    ap.add_argument("--screen-only", action="store_true", help="only the screen's points per hour (4.), written to "
                    "docs/results/benchmarks/screen_speed.txt with --write")
    args = ap.parse_args()
    if args.screen_only:
        return screen_only(args.write)
    shapes = ["1x2x32", "3x4x96", "8x8x256"] + ([] if args.quick else ["12x8x384"])
    torch.set_num_threads(cpu.cores())
    started, lines, rows = time.time(), [], []
    peak = matmul_peak()
    lines.append(f"fp32 matmul peak (2048^3, {cpu.cores()} threads): {peak / 1e9:.1f} GFLOP/s")
    print(lines[-1], flush=True)
    for shape in shapes:
        for p in (0.0, 0.1):
            eager, _ = tokens_per_second(shape, p, compiled=False)
            fast, compile_s = tokens_per_second(shape, p, compiled=True)
            model = GPT(parse_model_spec(shape), VOCAB, SEQ)
            params = sum(w.numel() for w in model.parameters())
            six_n = 6 * params * fast
            with_attention = model.flops_per_token() * fast
            rows.append((shape, p, eager, fast, compile_s, six_n / peak, with_attention / peak))
            lines.append(f"{shape} p={p:g} compiled/eager ratio {fast / eager:.2f} ({fast:,.0f} against {eager:,.0f} "
                         f"tokens/s; first compiled step {compile_s:.1f} s); compiled 6N FLOP/s {six_n / 1e9:.2f} G = "
                         f"ratio {six_n / peak:.2f} of the matmul peak ({with_attention / peak:.2f} counting attention)")
            print(lines[-1], flush=True)
    two, one = jobs_against_one()
    lines.append(f"3x4x96 p=0.1 eager: 2 jobs x 1 thread / 1 process x {cpu.cores()} threads ratio {two / one:.2f} "
                 f"({two:,.0f} against {one:,.0f} tokens/s)")
    print(lines[-1], flush=True)
    if not args.quick:
        lines.append(screen_ratio())
        print(lines[-1], flush=True)
    table = profile() if args.profile else ""
    if table:
        print(f"\ncompiled 8x8x256 at p = 0.1, 5 steps, by self CPU time:\n{table}")
    machine = machine_line()
    print(f"\n{time.time() - started:.0f} s on {machine}")
    if args.write:
        write_table(rows, lines, machine, " ".join(["scripts/bench_speed.py", *sys.argv[1:]]), time.time() - started,
                    table)


def machine_line() -> str:
    return f"{platform.machine()}, {cpu.cores()} cores, torch {torch.__version__}, {platform.python_version()}"


def screen_ratio() -> str:
    old, old_wall = screen_points_per_hour(["--compile", "off", "--jobs", "1"])
    new, new_wall = screen_points_per_hour([])
    return (f"seed_scale_model's screen (54 points of 274 steps): points per hour, today's defaults / 0.6.0's "
            f"(eager, 1 job) ratio {new / old:.2f} ({new:.0f} against {old:.0f}; {new_wall:.0f} s against {old_wall:.0f} s)")


def screen_only(write: bool) -> None:
    started = time.time()
    line = screen_ratio()
    machine = machine_line()
    print(line, f"\n{time.time() - started:.0f} s on {machine}", sep="", flush=True)
    if write:
        out = ROOT / "docs" / "results" / "benchmarks" / "screen_speed.txt"
        out.write_text(f"command: .venv/bin/python scripts/bench_speed.py {' '.join(sys.argv[1:])}\nmachine: {machine}; "
                       f"{time.strftime('%Y-%m-%d')}; {time.time() - started:.0f} s wall; each command with an empty "
                       f"compile cache\n{line}\n")
        print(f"wrote {out}")


def write_table(rows, lines, machine: str, command: str, seconds: float, profile_table: str) -> None:
    out = ROOT / "docs" / "results" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    table = ["| shape | p | eager tokens/s | compiled tokens/s | ratio | first compiled step (s) | 6N FLOP/s / peak | "
             "with attention / peak |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    table += [f"| {s} | {p:g} | {e:,.0f} | {c:,.0f} | {c / e:.2f} | {f:.1f} | {a:.2f} | {b:.2f} |"
              for s, p, e, c, f, a, b in rows]
    text = [f"# Training speed: compiled against eager, jobs against one process\n",
            f"Command: `.venv/bin/python {command}`; machine: {machine}; {time.strftime('%Y-%m-%d')}; "
            f"{seconds:.0f} s wall. Batch {BATCH} x {SEQ} tokens, vocab {VOCAB}.\n", *table, "", "Every line the run printed:\n",
            *[f"    {line}" for line in lines], ""]
    if profile_table:
        text += ["Where a compiled 8x8x256 step at p = 0.1 spends its time (torch.profiler, 5 steps, self CPU time):\n",
                 *[f"    {line}" for line in profile_table.splitlines()], ""]
    (out / "speed.md").write_text("\n".join(text))
    (out / "speed.json").write_text(json.dumps({"machine": machine, "command": command, "lines": lines,
                                                "rows": rows}, indent=1) + "\n")
    print(f"wrote {out / 'speed.md'}")


if __name__ == "__main__":
    os.environ.setdefault("DROPOUT_DECAY_JOBS", "auto")
    main()
