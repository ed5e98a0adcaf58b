"""Dropout masks: which elements each dropout site drops, drawn in one of two recorded forms.

Both forms drop with the same statistics: every element independently with probability p
(on a CPU, P(drop) = round(p·2^16)/2^16 from 16 random bits per element; see drop_threshold).
They differ only in where the random bits come from on a CPU, so a run replays bitwise only
under its own form; the form is a setting (`dropout_masks`), recorded in config.json and part
of the fingerprint.

* Form 2 (the default from 0.3): bits from numpy's PCG64DXSM, seeded from torch's generator at
  each draw (so `torch.manual_seed` still fixes every mask); the attention mask draws only the
  pairs below the diagonal, half of T×T. On 2 CPU cores that cut dropout's step-time cost at
  p = 0.1 and 8x8x256 from about 22% to 14% (docs/results/benchmarks.md).
* Form 1 (0.2 and the committed results): bits from torch's mt19937, every (query, key) pair
  drawn. Studies stored without the setting were made with it and keep it on replay and resume.

On MPS and CUDA both forms draw uniform floats on the device (`torch.rand`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

MASK_FORMS = (1, 2)
DEFAULT_MASKS = 2
LEGACY_MASKS = 1  # what a stored config without the setting was made with


def torch_int16(shape: tuple[int, ...]) -> torch.Tensor:
    """Form 1: uniform int16 draws from torch's generator, four per 64-bit word."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    return words.view(torch.int16)[:n].view(shape)


def pcg64_int16(shape: tuple[int, ...]) -> torch.Tensor:
    """Form 2: uniform int16 draws from PCG64DXSM (about twice torch's rate on a CPU), four per
    64-bit word, its seed drawn from torch's generator."""
    n = math.prod(shape)
    seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
    words = np.random.PCG64DXSM(seed).random_raw((n + 3) // 4)
    return torch.from_numpy(words.view(np.int16)[:n]).view(shape)


DRAWS = {1: torch_int16, 2: pcg64_int16}


def drop_threshold(p: float) -> int:
    """An int16 draw d is dropped when d <= this: P(drop) = round(p * 2^16) / 2^16, and at least
    2^-16 for 0 < p < 2^-17 (a decay's last steps towards 0), where round() would give an int16
    threshold below -32768."""
    return max(-32768 + round(p * 65536) - 1, -32768)


def keep_mask(shape: tuple[int, ...], p: float, device: torch.device, form: int = DEFAULT_MASKS) -> torch.Tensor:
    """A boolean mask, each element True (kept) with probability 1 - p."""
    if device.type != "cpu":
        return torch.rand(shape, device=device) >= p
    return DRAWS[form](shape) > drop_threshold(p)


def drop(x: torch.Tensor, p: float, training: bool, form: int = DEFAULT_MASKS) -> torch.Tensor:
    """Inverted dropout; the identity (and no random draw) when not training or p == 0.
    One multiplier tensor (1/(1-p) or 0) serves the forward and the backward pass: cheaper
    than selecting with the mask in both, with the same values."""
    if not training or p == 0:
        return x
    return x * torch.where(keep_mask(x.shape, p, x.device, form), 1.0 / (1.0 - p), 0.0).to(x.dtype)


def _below_diagonal(n: int, p: float) -> torch.Tensor:
    """Per-position int16 thresholds: the rate's below the diagonal, int16's maximum (never
    kept) on and above it."""
    threshold = torch.full((n, n), 32767, dtype=torch.int16)
    return threshold.masked_fill_(torch.ones(n, n, dtype=torch.bool).tril(-1), drop_threshold(p))


def keep_keys(batch: int, heads: int, T: int, p: float, device: torch.device, form: int = DEFAULT_MASKS) -> torch.Tensor:
    """DropKey's mask, True where a query attends: causal, each earlier key dropped with
    probability p, the diagonal always kept. Boolean, one byte a pair, because the attention
    keeps this mask for its backward pass (gpt.py) rather than a float one."""
    if device.type != "cpu":
        keep = keep_mask((batch, heads, T, T), p, device) | torch.eye(T, dtype=torch.bool, device=device)
        return keep & torch.ones(T, T, dtype=torch.bool, device=device).tril()
    if form == 1:
        keep = torch_int16((batch, heads, T, T)) > _below_diagonal(T, p)
    else:
        # Only the pairs below the diagonal need bits. Split at h = ceil(T/2): the lower-left
        # block needs all (T-h) x h, the two diagonal blocks one strict triangle each, which
        # one h x h draw X holds: its lower triangle for the top-left block, its upper triangle
        # (transposed) for the bottom-right one. T x h draws in all, disjoint, so independent.
        h, r = (T + 1) // 2, T // 2
        draws, threshold = pcg64_int16((batch, heads, T, h)), _below_diagonal(h, p)
        X = draws[..., :h, :]
        keep = torch.empty(batch, heads, T, T, dtype=torch.bool)
        torch.gt(X, threshold, out=keep[..., :h, :h])
        torch.gt(draws[..., h:, :], drop_threshold(p), out=keep[..., h:, :h])
        torch.gt(X[..., :r, :r].transpose(-1, -2), threshold[:r, :r], out=keep[..., h:, h:])
        keep[..., :h, h:] = False
    keep.diagonal(dim1=-2, dim2=-1).fill_(True)
    return keep


@dataclass
class Drawn:
    """Every dropout mask of one forward pass, drawn before it, and the inverted-dropout scale
    1/(1-p) as a tensor: what the compiled forward takes instead of the rate, so a schedule that
    changes the rate every step changes inputs, never the graph. Sites in the order the eager
    forward draws them (the embedding, then per block the keys, the attention output, the MLP
    output), so from the same generator state both paths drop the same elements. No sites: no
    dropout."""
    sites: list[torch.Tensor]
    scale: torch.Tensor | None = None

    def embedding(self) -> torch.Tensor | None:
        return self.sites[0] if self.sites else None

    def block(self, index: int) -> tuple[torch.Tensor | None, ...]:
        return tuple(self.sites[1 + 3 * index: 4 + 3 * index]) if self.sites else (None, None, None)

    def apply(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """Inverted dropout under a drawn mask: the eager `drop`'s arithmetic."""
        return x if keep is None else x * torch.where(keep, self.scale, 0.0).to(x.dtype)


def draw_all(batch: int, seq: int, width: int, heads: int, depth: int, p: float, device: torch.device,
             form: int = DEFAULT_MASKS) -> Drawn:
    """Every site's mask for one forward pass at rate p (none at 0), drawn as the eager path
    draws them, one after the other from the same generators."""
    if p == 0:
        return Drawn([])
    sites = [keep_mask((batch, seq, width), p, device, form)]
    for _ in range(depth):
        sites += [keep_keys(batch, heads, seq, p, device, form), keep_mask((batch, seq, width), p, device, form),
                  keep_mask((batch, seq, width), p, device, form)]
    return Drawn(sites, torch.tensor(1.0 / (1.0 - p), device=device))


def keep_everything(batch: int, seq: int, width: int, heads: int, depth: int, device: torch.device) -> Drawn:
    """Masks that drop nothing, at scale 1: a step at p = 0 through the graph that draws masks
    computes what the p = 0 forward does (each kept value times 1, the causal keys all kept) and
    draws no random bits, so the generators stay where the eager p = 0 step leaves them."""
    causal = torch.ones(seq, seq, dtype=torch.bool, device=device).tril()

    def every() -> torch.Tensor:  # a tensor per site: the graph was traced on distinct inputs
        return torch.ones((batch, seq, width), dtype=torch.bool, device=device)

    sites = [every()]
    for _ in range(depth):
        sites += [causal.expand(batch, heads, seq, seq).contiguous(), every(), every()]
    return Drawn(sites, torch.tensor(1.0, device=device))


def describe_masks(form: int) -> dict:
    """How each site drops, for config.json."""
    bits = {1: "torch's mt19937 generator; every (query, key) pair drawn",
            2: "numpy's PCG64DXSM seeded from torch's generator at each draw; only pairs below the diagonal drawn"}
    return {
        "embedding, attention output, MLP output": "inverted dropout: each element zeroed with probability p, the rest scaled by 1/(1-p)",
        "attention": "DropKey: each (query, earlier key) pair masked before the softmax with probability p, the diagonal "
                     "always kept, weights renormalised over kept keys (nanoGPT: weights zeroed after the softmax, rescaled)",
        "masks": f"form {form}: on a CPU 16 random bits per element from {bits[form]}; on MPS/CUDA uniform floats",
    }
