"""Dropout masks (model/masks.py): both forms, their rates, form 1 bit for bit as 0.2 drew it."""

import hashlib
import math

import pytest
import torch

from dropout_decay.model.gpt import (
    GPT,
    parse_model_spec,
)
from dropout_decay.model.masks import drop, drop_threshold, keep_keys, keep_mask

V, T = 50, 12


def test_form_2_attention_masks_are_independent_across_the_blocks_that_share_a_draw():
    """Form 2 takes the top-left and the bottom-right block from one draw's two triangles: a
    kept pair there must say nothing about its mirror (a shared bit would correlate them)."""
    torch.manual_seed(1)
    n, h = 16, 8
    keep = keep_keys(2000, 4, n, 0.5, torch.device("cpu"), 2).float().flatten(0, 1)
    for i, j in [(3, 1), (7, 0), (5, 4)]:  # (i, j) below the diagonal of the top-left block
        a, b = keep[:, i, j], keep[:, h + i, h + j]  # the top-left pair drawn from X[i, j], its mirror from X[j, i]
        assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 0.05


@pytest.mark.parametrize("form", [1, 2])
@pytest.mark.parametrize("p", [0.02, 0.1, 0.5, 0.9])
def test_keep_masks_drop_at_the_rate_asked(p, form):
    torch.manual_seed(1)
    n = 400_000
    dropped = 1 - keep_mask((n,), p, torch.device("cpu"), form).float().mean().item()
    assert dropped == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / n))
    assert (drop_threshold(p) + 32769) / 65536 == pytest.approx(p, abs=1 / 65536)  # P(draw <= threshold)


@pytest.mark.parametrize("form", [1, 2])
def test_a_rate_too_small_for_16_bits_drops_one_draw_in_65536_instead_of_failing(form):
    """A decay towards 0 passes rates below 2^-17 in its last steps; their threshold must still
    fit int16 (it once failed the point with an overflow)."""
    cpu = torch.device("cpu")
    assert drop_threshold(1e-7) == -32768 and drop_threshold(1 / 65536) == -32768
    torch.manual_seed(0)
    keep = keep_keys(2, 2, 8, 1e-7, cpu, form)
    assert torch.equal(keep, torch.ones(8, 8, dtype=torch.bool).tril().expand(2, 2, 8, 8))  # at 2^-16 none of these dropped
    x = torch.ones(1000)
    assert torch.equal(drop(x, 1e-7, True, form), x * (1 / (1 - 1e-7)))


def test_form_1_draws_the_masks_of_0_2_bit_for_bit():
    """Golden values from 0.2's model.py (e66aa52), which drew every mask in what is now form 1:
    after torch.manual_seed(7), a residual site's kept elements, then DropKey's attended pairs.
    Form 1 exists so that studies stored by 0.2, and the committed results, replay bitwise."""
    def digest(t):
        return hashlib.sha256(t.to(torch.uint8).numpy().tobytes()).hexdigest()[:16]

    torch.manual_seed(7)
    kept = drop(torch.ones(1000), 0.3, True, 1) != 0
    attended = keep_keys(2, 3, 9, 0.3, torch.device("cpu"), 1)
    assert (digest(kept), kept.sum().item()) == ("73bc4ac511f580e8", 707)
    assert (digest(attended), attended.sum().item()) == ("48620db701e8c421", 199)


def test_a_form_1_model_trains_on_the_masks_of_0_2():
    """Every site takes the model's form: 0.2's model gave this loss (e66aa52; float32, so to a
    tolerance far below what another mask would move it: form 2 gives 4.96)."""
    torch.manual_seed(0)
    model = GPT(parse_model_spec("2x2x16"), 64, 16, masks=1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    model.train()
    model.set_dropout(0.3)
    torch.manual_seed(5)
    idx = torch.randint(0, 64, (4, 17))
    assert model(idx[:, :-1], idx[:, 1:]).item() == pytest.approx(4.6553874015808105, rel=1e-5)


def test_both_mask_forms_follow_the_torch_seed_and_differ_from_each_other():
    def draw(form, seed):
        torch.manual_seed(seed)
        return keep_mask((1000,), 0.5, torch.device("cpu"), form), keep_keys(2, 2, 9, 0.5, torch.device("cpu"), form)

    for form in (1, 2):
        assert all(torch.equal(a, b) for a, b in zip(draw(form, 3), draw(form, 3)))
        assert not torch.equal(draw(form, 3)[0], draw(form, 4)[0])
    assert not torch.equal(draw(1, 3)[0], draw(2, 3)[0])


def test_masks_for_another_device_are_made_on_that_device():
    """MPS and CUDA take the masks' generic branch; the meta device runs it here (shapes, not values)."""
    meta = torch.device("meta")
    mask = keep_mask((3, 5), 0.1, meta)
    assert (mask.device, mask.dtype, tuple(mask.shape)) == (meta, torch.bool, (3, 5))
    keys = keep_keys(2, 3, 7, 0.1, meta)
    assert (keys.device, keys.dtype, tuple(keys.shape)) == (meta, torch.bool, (2, 3, 7, 7))
