# This file is derived from nanochat (https://github.com/karpathy/nanochat): its GPT core
# (rotary, QK norm, parameter-free RMSNorm, ReLU², untied head, logit soft-cap). Written anew.
#
# MIT License
#
# Copyright (c) 2025 Andrej Karpathy
#
# Permission is hereby granted, free of charge, to any person obtaining a copy
# of this software and associated documentation files (the "Software"), to deal
# in the Software without restriction, including without limitation the rights
# to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
# copies of the Software, and to permit persons to whom the Software is
# furnished to do so, subject to the following conditions:
#
# The above copyright notice and this permission notice shall be included in all
# copies or substantial portions of the Software.
#
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
# IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
# FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
# AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
# LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
# OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
# SOFTWARE.
"""A small causal GPT after nanochat's core (as launched, commit 3a5e0bc), with dropout at
nanoGPT's places.

Dropout sites: the (normed) embedding output, the attention weights, and the attention and
MLP residual outputs. The rate lives in one attribute, `model.dropout`, read at every forward,
so a schedule can change it between steps; at 0 no dropout op runs and no random number is
drawn, so the forward pass is exactly the dropout-free model.

The attention site drops *keys* (DropKey, Li et al., CVPR 2023): each (query, earlier key)
pair is masked before the softmax with probability p and the weights renormalise over the
keys kept; a query always keeps itself, so no row is empty. nanoGPT instead zeroes weights
after the softmax and rescales by 1/(1-p), which no fused attention kernel supports: on a CPU
it fell back to unfused attention and made p = 0.1 cost 33-46% more per step
(scripts/bench_train.py). Masking keys keeps the fused kernel, with the same mask rate.
How masks are drawn (two recorded forms, same statistics) is in masks.py. Compiled, the forward
takes them drawn beforehand (`Drawn`, training/compiled.py) and never reads the rate, and
computes the same loss in a form the compiler does better with (`softcapped_cross_entropy`).
"""

from __future__ import annotations

import math
import re
from functools import partial
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from ..common import UsageError
from .masks import DEFAULT_MASKS, Drawn, drop, keep_keys

SOFTCAP = 15.0
ROPE_BASE = 10_000


@dataclass(frozen=True)
class ModelSpec:
    """`DEPTHxHEADSxWIDTH` (layers x heads x width), optionally named: `winner=12x8x384`."""

    depth: int
    heads: int
    width: int
    alias: str | None = None

    @property
    def shape(self) -> str:
        return f"{self.depth}x{self.heads}x{self.width}"

    @property
    def label(self) -> str:
        return self.alias or self.shape

    def __str__(self) -> str:
        return f"{self.alias}={self.shape}" if self.alias else self.shape

    def n_params(self, vocab_size: int) -> int:
        """Embedding + head (2VW) and per block q,k,v,proj (4W^2) plus the 4x MLP (8W^2)."""
        return 2 * vocab_size * self.width + 12 * self.depth * self.width**2


SPEC = re.compile(r"(?:(?P<alias>[A-Za-z_][\w.-]*)=)?(?P<d>\d+)x(?P<h>\d+)x(?P<w>\d+)")


def parse_model_spec(text: str) -> ModelSpec:
    m = SPEC.fullmatch(text.strip())
    if not m:
        raise UsageError(f"bad model spec {text!r}: expected DEPTHxHEADSxWIDTH such as 12x8x384, or alias=12x8x384")
    d, h, w = int(m["d"]), int(m["h"]), int(m["w"])
    if min(d, h, w) == 0:
        raise UsageError(f"bad model spec {text!r}: depth, heads and width must be positive")
    if w % h:
        raise UsageError(f"bad model spec {text!r}: width {w} is not divisible by {h} heads")
    if (w // h) % 2:
        raise UsageError(f"bad model spec {text!r}: head dim {w // h} must be even for rotary embeddings")
    return ModelSpec(d, h, w, m["alias"])


def norm(x: torch.Tensor) -> torch.Tensor:
    """RMSNorm with no learnable parameters."""
    return F.rms_norm(x, (x.size(-1),))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding, half-split convention: rotate (first half, second half) pairs."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos + b * sin, b * cos - a * sin], dim=-1)


def _masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    # additive, as SDPA would make a boolean mask in every forward and backward call anyway
    attend, masked = (torch.tensor(x, dtype=q.dtype, device=q.device) for x in (0.0, -math.inf))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=torch.where(keep, attend, masked))


def attend_dropping_keys(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Attention under DropKey's boolean mask, recomputed from that mask in backward. Called
    plainly, autograd keeps the float mask for backward, four bytes per (query, key) pair and
    layer (the test counts them; at the seed's 16x8x384 and batch about 1 GiB); this keeps the
    one-byte mask, for one more attention forward per layer.
    Same mask, same arithmetic: outputs and gradients are bitwise those of the plain call."""
    return checkpoint(_masked_attention, q, k, v, keep, use_reentrant=False, preserve_rng_state=False)


def _recompute_all_but_attention(ctx, op, *args, **kwargs):
    return CheckpointPolicy.MUST_SAVE if "scaled_dot_product" in str(op) else CheckpointPolicy.MUST_RECOMPUTE


def attend_saving_only_the_mask(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The compiled path's masked attention: backward keeps the boolean mask and the attention's
    own outputs, and rebuilds the float mask from the boolean one (selective checkpointing)."""
    return checkpoint(_masked_attention, q, k, v, keep, use_reentrant=False, preserve_rng_state=False,
                      context_fn=partial(create_selective_checkpoint_contexts, _recompute_all_but_attention))


def softcapped_cross_entropy(raw: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The compiled path's loss: the mean cross-entropy of the soft-capped logits, the eager
    path's function written for a compiler. SOFTCAP·tanh(x/SOFTCAP) is 2·SOFTCAP·σ(2x/SOFTCAP) −
    SOFTCAP (a sigmoid vectorises at twice tanh's speed on a CPU), and the loss is logsumexp minus
    the target's logit (cross_entropy's backward reduces a one-hot over the vocabulary). Together
    they take the loss of a 3x4x96 step (1,024 tokens) from 16-21 to 7-11 ms on one thread (forward
    and backward, the head's matmul apart); they agree with the eager form to rounding
    (tests/model/test_gpt.py)."""
    capped = (2 * SOFTCAP) * torch.sigmoid(raw * (2 / SOFTCAP)) - SOFTCAP
    capped = capped.view(-1, capped.size(-1))
    picked = capped.gather(-1, targets.reshape(-1, 1)).squeeze(-1)
    return (torch.logsumexp(capped, dim=-1) - picked).mean()


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.heads, self.head_dim = spec.heads, spec.width // spec.heads
        # q, k and v in one matmul (nanochat keeps three for its MQA option, which we do not need)
        self.c_qkv = nn.Linear(spec.width, 3 * spec.width, bias=False)
        self.c_proj = nn.Linear(spec.width, spec.width, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, p: float, masks: int,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.c_qkv(x).view(B, T, 3 * self.heads, self.head_dim)
        qk = norm(rotate(qkv[:, :, : 2 * self.heads], cos, sin))  # rotary, then QK norm, as nanochat
        q, k, v = (t.transpose(1, 2) for t in (qk[:, :, : self.heads], qk[:, :, self.heads :], qkv[:, :, 2 * self.heads :]))
        if keep is not None:  # a drawn mask (the compiled path): the graph keeps the boolean mask for backward
            y = attend_saving_only_the_mask(q, k, v, keep)
        elif self.training and p > 0:  # DropKey: mask keys before the softmax; a query always keeps itself
            y = attend_dropping_keys(q, k, v, keep_keys(B, self.heads, T, p, x.device, masks))
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width, bias=False)
        self.c_proj = nn.Linear(4 * width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.attn = Attention(spec)
        self.mlp = MLP(spec.width)

    def forward(self, x, cos, sin, p: float, masks: int, drawn: Drawn | None = None, index: int = 0):
        if drawn is None:  # eager: each site draws its own mask at rate p
            x = x + drop(self.attn(norm(x), cos, sin, p, masks), p, self.training, masks)
            return x + drop(self.mlp(norm(x)), p, self.training, masks)
        keys, after_attention, after_mlp = drawn.block(index)
        x = x + drawn.apply(self.attn(norm(x), cos, sin, 0.0, masks, keys), after_attention)
        return x + drawn.apply(self.mlp(norm(x)), after_mlp)


class GPT(nn.Module):
    def __init__(self, spec: ModelSpec, vocab_size: int, seq_len: int, masks: int = DEFAULT_MASKS):
        super().__init__()
        self.spec, self.vocab_size, self.seq_len, self.masks = spec, vocab_size, seq_len, masks
        self.dropout = 0.0
        self.wte = nn.Embedding(vocab_size, spec.width)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.depth))
        self.lm_head = nn.Linear(spec.width, vocab_size, bias=False)
        head_dim = spec.width // spec.heads
        inv_freq = ROPE_BASE ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)[None, :, None, :]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """nanochat's init at 3a5e0bc, weight by weight (a Linear W x -> y gets
        N(0, s^2), s = min(1, sqrt(fan_out / fan_in)) / sqrt(fan_in), after arXiv 2310.17813)."""
        def fan_aware(weight: torch.Tensor, fan_out: int, fan_in: int) -> None:
            weight.normal_(0.0, min(1.0, math.sqrt(fan_out / fan_in)) / math.sqrt(fan_in))

        width = self.spec.width
        self.wte.weight.normal_(0.0, 1.0)  # normed right after the lookup, so its scale does not matter
        for b in self.blocks:
            fan_aware(b.attn.c_qkv.weight, width, width)  # three W x W maps (nanochat's c_q, c_k, c_v)
            fan_aware(b.mlp.c_fc.weight, 4 * width, width)
            b.attn.c_proj.weight.zero_()  # every block starts as the identity on the residual stream
            b.mlp.c_proj.weight.zero_()
        self.lm_head.weight.zero_()  # uniform predictions at init: loss starts at ln(vocab)

    def set_dropout(self, p: float) -> None:
        """One rate for every dropout site, in force from the next forward pass."""
        self.dropout = float(p)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, drawn: Drawn | None = None) -> torch.Tensor:
        """Logits (B, T, V) in fp32, or the mean cross-entropy when `targets` is given. With
        `drawn`, dropout uses those masks and never reads `self.dropout` (the compiled path:
        a new rate is a new input, not a new graph); without, it draws its own at `self.dropout`."""
        T = idx.size(1)
        if T > self.seq_len:
            raise ValueError(f"sequence of {T} exceeds the model's {self.seq_len}")
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        p = 0.0 if drawn is not None or not self.training else self.dropout
        x = norm(self.wte(idx))
        x = drop(x, p, self.training, self.masks) if drawn is None else drawn.apply(x, drawn.embedding())
        for index, block in enumerate(self.blocks):
            x = block(x, cos, sin, p, self.masks, drawn, index)
        logits = self.lm_head(norm(x)).float()
        if drawn is not None and targets is not None:
            return softcapped_cross_entropy(logits, targets)
        logits = SOFTCAP * torch.tanh(logits / SOFTCAP)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    def flops_per_token(self) -> int:
        """Training FLOPs per token: 6 per non-embedding weight plus attention (PaLM appendix B)."""
        n = sum(p.numel() for p in self.parameters()) - self.wte.weight.numel()
        s = self.spec
        return 6 * n + 12 * s.depth * s.heads * (s.width // s.heads) * self.seq_len
