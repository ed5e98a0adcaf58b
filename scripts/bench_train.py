"""Benchmark the trainer: forward+backward tokens/s and model FLOPs utilisation, in one run.

For each model it measures, on the same device and in the same process:
  * the GPT's training step (fwd + bwd + clip + AdamW) on a fixed batch -> tokens/s, FLOP/s;
  * a matmul-only stand-in with the same Linear shapes (no attention, norms or softmax)
    -> the FLOP/s a "plain" model reaches; our ratio against it (goal >= 0.70);
  * the trainer's per-step bookkeeping outside fwd/bwd/optimiser (batch sampling from the
    memmap, schedule, learning rate), timed alone, against the step -> overhead (goal <= 2%);
  * the cost of dropout p = 0.1 at every site, for our masks in form 2 (the default) and form 1
    (masks.py) and for nanoGPT's dropout (SDPA's dropout_p, F.dropout): per round a block of
    steps at p = 0 then one at p = 0.1, the ratio of the two block medians, and the median over
    rounds, so a noisy machine slows both sides alike (goal <= 15%);
and a square-matmul peak, so MFU is stated against a peak measured here, not a datasheet.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropout_decay.sweep import cpu
from dropout_decay.model import gpt  # noqa: E402
from dropout_decay.data.cache import DataSource  # noqa: E402
from dropout_decay.data.prepare import prepare_cache  # noqa: E402
from dropout_decay.model.gpt import GPT, parse_model_spec  # noqa: E402
from dropout_decay.data.batches import WindowSampler  # noqa: E402
from dropout_decay.model.schedules import parse_decay  # noqa: E402
from dropout_decay.training.trainer import TrainConfig, lr_at, make_optimizer  # noqa: E402


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def timed(fn, device: str, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - t) / steps


def matmul_peak(device: str, n: int = 2048) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / timed(lambda: a @ b, device, 10)


def step_fn(model, opt, params, x, y, clip=1.0):
    def step():
        loss = model(x, y) if y is not None else model(x).square().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def linear_stand_in(model: GPT) -> nn.Module:
    """Every Linear of the GPT, in order, as one matmul chain (plus the embedding lookup)."""
    shapes = [m.weight.shape for m in model.modules() if isinstance(m, nn.Linear)]
    # chain them: the q,k,v output (3W) feeds a (3W -> W) matmul of the same FLOPs as the
    # W -> W projection it stands for plus the attention it skips; close enough for a ceiling
    chain, width = [], model.spec.width
    for out_f, in_f in shapes:
        chain.append(nn.Linear(width, out_f, bias=False))
        width = out_f
    return nn.Sequential(*chain)


class NanoGPTDropout:
    """Swap in nanoGPT's dropout (SDPA's dropout_p on the attention weights, F.dropout elsewhere)
    for the length of a `with` block: the reference the DropKey form is measured against."""

    def __enter__(self):
        self.saved = gpt.drop, gpt.Attention.forward

        def attention(module, x, cos, sin, p, masks):
            B, T, C = x.shape
            qkv = module.c_qkv(x).view(B, T, 3 * module.heads, module.head_dim)
            qk = gpt.norm(gpt.rotate(qkv[:, :, : 2 * module.heads], cos, sin))
            q, k, v = (t.transpose(1, 2) for t in (qk[:, :, : module.heads], qk[:, :, module.heads :],
                                                   qkv[:, :, 2 * module.heads :]))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p if module.training else 0.0)
            return module.c_proj(y.transpose(1, 2).reshape(B, T, C))

        gpt.drop = lambda x, p, training, masks: F.dropout(x, p, True) if training and p > 0 else x
        gpt.Attention.forward = attention

    def __exit__(self, *exc):
        gpt.drop, gpt.Attention.forward = self.saved


def dropout_cost(model: GPT, step, rounds: int, block: int) -> float:
    """Median over rounds of (median step time at p = 0.1) / (median at p = 0) - 1, each rate
    timed over a block of steps after one untimed step that settles the allocator."""
    ratios = []
    for _ in range(rounds):
        medians = {}
        for p in (0.0, 0.1):
            model.set_dropout(p)
            step()
            times = []
            for _ in range(block):
                t = time.perf_counter()
                step()
                times.append(time.perf_counter() - t)
            medians[p] = statistics.median(times)
        ratios.append(medians[0.1] / medians[0.0])
    model.set_dropout(0.0)
    return statistics.median(ratios) - 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["8x8x256", "12x8x384"])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of p=0 / p=0.1 blocks for the dropout cost")
    ap.add_argument("--block", type=int, default=4, help="steps per rate in a round")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dev, B, T = args.device, args.batch_size, args.seq_len
    kept = cpu.keep_freed_memory()  # as every run does
    cache = prepare_cache(DataSource())
    vocab = cache.manifest["vocab_size"]

    peak = matmul_peak(dev)
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, B={B}, T={T}, "
          f"glibc keeps freed memory: {kept}")
    print(f"square matmul peak: {peak / 1e9:.1f} GFLOP/s")
    for text in args.models:
        spec = parse_model_spec(text)
        torch.manual_seed(0)
        model = GPT(spec, vocab, T).to(dev)
        for p in model.parameters():  # out of the zero-init regime, like a trained model
            p.data.normal_(0, 0.02)
        cfg = TrainConfig(batch_size=B, seq_len=T)
        opt = make_optimizer(model, cfg, dev)
        batch = torch.randint(0, vocab, (B, T + 1), device=dev)
        x, y = batch[:, :-1], batch[:, 1:]
        t_step = timed(step_fn(model, opt, list(model.parameters()), x, y), dev, args.steps)
        flops = model.flops_per_token() * B * T
        ours = flops / t_step

        plain = linear_stand_in(model).to(dev)
        popt = torch.optim.AdamW(plain.parameters(), fused=dev in ("cpu", "cuda", "mps"))
        h = torch.randn(B * T, spec.width, device=dev)
        plain_flops = 6 * sum(p.numel() for p in plain.parameters()) * B * T
        t_plain = timed(step_fn(plain, popt, list(plain.parameters()), h, None), dev, args.steps)
        plain_rate = plain_flops / t_plain

        sampler = WindowSampler(cache.train_pool(), B, T, 0)
        schedule = parse_decay("d:0.3:0.1:cosine")

        def bookkeeping(step=[0]):
            step[0] += 1
            model.set_dropout(schedule.rate(step[0] / 1000))
            for group in opt.param_groups:
                group["lr"] = lr_at(step[0], 1000, cfg)
            sampler.sample(cache.n_train).to(dev, non_blocking=True)

        t_book = timed(bookkeeping, dev, 200)
        model.set_dropout(0.0)
        step = step_fn(model, opt, list(model.parameters()), x, y)
        costs = {}
        for form in (2, 1):
            model.masks = form
            costs[form] = dropout_cost(model, step, args.rounds, args.block)
        with NanoGPTDropout():
            nanogpt_cost = dropout_cost(model, step, args.rounds, args.block)

        print(f"\n{spec.shape}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, "
              f"{model.flops_per_token() / 1e6:.0f} MFLOP/token")
        print(f"  fwd+bwd+AdamW: {t_step * 1e3:.0f} ms/step, {B * T / t_step:,.0f} tokens/s, "
              f"{ours / 1e9:.1f} GFLOP/s, MFU {ours / peak:.1%} of measured matmul peak")
        print(f"  matmul-only stand-in: {plain_rate / 1e9:.1f} GFLOP/s ({plain_rate / peak:.1%} of peak); "
              f"ours/plain = {ours / plain_rate:.2f}   goal >= 0.70")
        print(f"  dropout 0.1 at every site, step-time cost (median of {args.rounds} rounds of {args.block}-step blocks): "
              f"masks form 2 {costs[2]:+.1%}   goal <= 15%; form 1 {costs[1]:+.1%}; nanoGPT's dropout {nanogpt_cost:+.1%}")
        print(f"  per-step bookkeeping: {t_book * 1e3:.2f} ms = {t_book / t_step:.2%} of a step   goal <= 2%")


if __name__ == "__main__":
    main()
