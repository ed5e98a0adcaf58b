"""How much memory one training step needs, from the shapes alone, before anything is built.

fp32 throughout. The weights, their gradients and AdamW's two moments are 16 bytes a parameter.
What backward keeps is the rest: per layer, a few dozen width-sized tensors per token (norms,
q/k/v after rotary, the attention output, the MLP's 4x-wide hidden state and its square, the
residual adds); at the head, the logits and their soft-capped and softmaxed copies, vocabulary-
sized per token. Dropout adds, per layer, the residual sites' multipliers and what the masked
steps keep beside them, and DropKey's boolean mask (one byte per query-key pair, gpt.py); once,
the float mask of the one layer whose attention is being computed or recomputed. On top of these,
torch's kernels, thread pools and allocator take a fixed amount on the first step, more with dropout.

The coefficients were fitted to peak RSS measured on a Linux CPU (scripts/bench_memory.py prints
estimate against measurement): at the seed's 8x8x256, 12x8x384 and 16x8x384 on its batch
(32 x 256), in two runs within 5% at p = 0, from 1% low to 8% high in micro-batches of 16, 8
and 4 with dropout, and 20-31% high for the whole batch with dropout, so a budget errs safe. The estimate is what training adds to
the process before the model is built.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..model import ModelSpec

BYTES = 4  # fp32
STATE_PER_PARAM = 4 * BYTES  # weight, gradient, AdamW's first and second moments
PER_TOKEN_WIDTH = 27  # width-sized tensors kept per token and layer
PER_LOGIT = 3  # logits, soft-capped logits, softmax
RUNTIME = 115 * 2**20  # bytes torch takes on the first training step whatever the model (measured)
DROPOUT_PER_TOKEN_WIDTH = 12  # width-sized tensors dropout adds per token and layer (fitted)
KEPT_MASK_BYTES = 1  # DropKey's boolean mask, per (query, key) pair and layer
DROPOUT_RUNTIME = 64 * 2**20  # bytes a step with dropout takes beyond that, whatever the model (fitted)


def step_bytes(spec: ModelSpec, vocab_size: int, batch_size: int, seq_len: int, dropout: bool) -> int:
    """Peak bytes of one training step of `spec` on a batch of `batch_size` x `seq_len` tokens."""
    tokens = batch_size * seq_len
    pairs = batch_size * spec.heads * seq_len * seq_len  # (query, key) pairs in one layer's attention
    floats = spec.depth * PER_TOKEN_WIDTH * tokens * spec.width + PER_LOGIT * tokens * vocab_size
    extra = 0
    if dropout:
        floats += (spec.depth * DROPOUT_PER_TOKEN_WIDTH + 1) * tokens * spec.width + pairs  # + embedding site, one float mask
        extra = spec.depth * KEPT_MASK_BYTES * pairs + DROPOUT_RUNTIME
    return RUNTIME + STATE_PER_PARAM * spec.n_params(vocab_size) + BYTES * floats + extra


TOKEN_ID_BYTES = 8  # evaluation batches are int64 token ids, kept on the device for the whole run


def eval_bytes(spec: ModelSpec, vocab_size: int, batch_size: int, seq_len: int, eval_batches: int, splits: int) -> int:
    """Bytes the evaluations add: the fixed batches of each split (training pool, validation,
    test) kept for the run, and one forward pass's logits (no gradients, one layer at a time)."""
    held = splits * eval_batches * batch_size * (seq_len + 1) * TOKEN_ID_BYTES
    return held + BYTES * PER_LOGIT * batch_size * seq_len * vocab_size


def available_bytes(device: str = "cpu") -> int | None:
    """Memory a run here may take: on CUDA the device's free memory; on Apple silicon what Metal
    recommends for one process; elsewhere the memory the kernel reports available (and below a
    cgroup's limit, where one is set). None where nothing says."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    if device == "mps":
        import torch

        recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        if recommended is not None and torch.backends.mps.is_available():  # else the MPS gate refuses the run
            return int(recommended())
    return _host_available()


def _host_available() -> int | None:
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        try:  # macOS and other Unixes: the physical memory
            found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"
