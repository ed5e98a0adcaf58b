"""How much memory one training step needs, from the shapes alone, before anything is built.

fp32 throughout. The weights, their gradients and AdamW's two moments are 16 bytes a parameter.
What backward keeps is the rest: per layer, a few dozen width-sized tensors per token (norms,
q/k/v after rotary, the attention output, the MLP's 4x-wide hidden state and its square, the
residual adds and dropout masks) and, once dropout is on, the attention's key mask and the
weights the softmax made, heads x T x T per sequence each; at the head, the logits and their
soft-capped and softmaxed copies, vocabulary-sized per token. On top of these, torch's kernels,
thread pools and allocator take a fixed amount on the first step. The coefficients were fitted to
peak RSS measured on a Linux CPU (scripts/bench_memory.py prints estimate against measurement):
at the seed's 8x8x256 and 12x8x384 on its batch (32 x 256) within 8% at p = 0 and in micro-batches
of 16, 8 and 4 with dropout, and 18-23% high for the whole batch with dropout, so a budget errs
safe. The estimate is what training adds to the process before the model is built.
"""

from __future__ import annotations

from ..model.gpt import ModelSpec

BYTES = 4  # fp32
STATE_PER_PARAM = 4 * BYTES  # weight, gradient, AdamW's first and second moments
PER_TOKEN_WIDTH = 27  # width-sized tensors kept per token and layer
PER_ATTENTION_CELL = 3  # heads x T x T floats kept per layer with dropout on; errs high for whole seed-size batches
PER_LOGIT = 3  # logits, soft-capped logits, softmax
RUNTIME = 115 * 2**20  # bytes torch takes on the first training step whatever the model (measured)


def step_bytes(spec: ModelSpec, vocab_size: int, batch_size: int, seq_len: int, dropout: bool) -> int:
    """Peak bytes of one training step of `spec` on a batch of `batch_size` x `seq_len` tokens."""
    tokens = batch_size * seq_len
    per_layer = PER_TOKEN_WIDTH * tokens * spec.width
    if dropout:
        per_layer += PER_ATTENTION_CELL * batch_size * spec.heads * seq_len * seq_len
    activations = spec.depth * per_layer + PER_LOGIT * tokens * vocab_size
    return RUNTIME + STATE_PER_PARAM * spec.n_params(vocab_size) + round(BYTES * activations)


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"
