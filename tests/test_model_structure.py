"""The GPT against a separately written reference forward pass, and each part's defining property:
rotary is a rotation that makes q·k depend on the offset only, QK norm gives unit RMS, and every
dropout site is active in training, off in eval, at its rate."""

import hashlib
import math

import pytest
import torch

from dropout_decay.model.masks import drop, drop_threshold, keep_keys, keep_mask
from dropout_decay.model.gpt import GPT, attend_dropping_keys, norm, parse_model_spec, rotate

V, T = 50, 12


def randomised(spec="2x2x16", seed=0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(parse_model_spec(spec), V, T)
    with torch.no_grad():
        for p in model.parameters():  # out of the zero init, so every part shows in the output
            p.normal_(0, 0.3)
    return model


def reference_logits(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """nanochat's forward, written out plainly from the description (not from model.py): one
    sequence, one head, one position at a time."""
    W = model.spec.width
    H, D = model.spec.heads, W // model.spec.heads
    eps = torch.finfo(torch.float32).eps

    def rms(v):
        return v / torch.sqrt((v * v).mean() + eps)

    def rope(v, pos):  # rotate the pair (v[i], v[i + D/2]) by angle pos * base^(-2i/D)
        out = v.clone()
        for i in range(D // 2):
            theta = pos * 10000 ** (-2 * i / D)
            a, b = v[i], v[i + D // 2]
            out[i] = a * math.cos(theta) + b * math.sin(theta)
            out[i + D // 2] = b * math.cos(theta) - a * math.sin(theta)
        return out

    out = []
    for seq in idx:
        x = [rms(model.wte.weight[t]) for t in seq]
        for block in model.blocks:
            wq, wk, wv = block.attn.c_qkv.weight.split(W)
            h = [rms(v) for v in x]
            attended = []
            for i in range(len(seq)):
                heads = []
                for hd in range(H):
                    s = slice(hd * D, (hd + 1) * D)
                    q = rms(rope((wq @ h[i])[s], i))
                    keys = [rms(rope((wk @ h[j])[s], j)) for j in range(i + 1)]
                    scores = torch.stack([q @ k for k in keys]) / math.sqrt(D)
                    weights = torch.softmax(scores, dim=0)
                    heads.append(sum(w * (wv @ h[j])[s] for j, w in enumerate(weights)))
                attended.append(block.attn.c_proj.weight @ torch.cat(heads))
            x = [a + b for a, b in zip(x, attended)]
            x = [v + block.mlp.c_proj.weight @ torch.relu(block.mlp.c_fc.weight @ rms(v)) ** 2 for v in x]
        logits = torch.stack([model.lm_head.weight @ rms(v) for v in x])
        out.append(15 * torch.tanh(logits / 15))
    return torch.stack(out)


def test_logits_match_a_separately_written_reference_forward_pass():
    model = randomised().eval()
    idx = torch.randint(0, V, (2, T))
    with torch.no_grad():
        ours, ref = model(idx), reference_logits(model, idx)
    assert ours.shape == ref.shape == (2, T, V)
    assert torch.allclose(ours, ref, atol=2e-4), (ours - ref).abs().max()
    assert ours.abs().max() < 15  # soft-capped
    x = torch.randint(0, V, (2, T + 1))
    loss = model(x[:, :-1], x[:, 1:])
    expected = torch.nn.functional.cross_entropy(reference_logits(model, x[:, :-1]).reshape(-1, V), x[:, 1:].reshape(-1))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-4)


def test_rotary_is_a_rotation_whose_dot_products_depend_on_the_offset_only():
    D, n = 16, 40
    inv = 10000 ** (-torch.arange(0, D, 2) / D)
    angles = torch.outer(torch.arange(n, dtype=torch.float32), inv)
    cos, sin = angles.cos(), angles.sin()
    torch.manual_seed(1)
    q, k = torch.randn(D), torch.randn(D)
    at = lambda v, pos: rotate(v[None], cos[pos], sin[pos])[0]
    for pos in (0, 3, 17):
        assert at(q, pos).norm() == pytest.approx(q.norm().item(), rel=1e-5)
    for shift in (1, 5, 9):
        for i, j in ((7, 2), (20, 20), (30, 11)):
            assert (at(q, i) @ at(k, j)).item() == pytest.approx((at(q, i + shift) @ at(k, j + shift)).item(), abs=1e-4)
    assert (at(q, 5) @ at(k, 2)).item() != pytest.approx((at(q, 6) @ at(k, 2)).item(), abs=1e-3)  # it does rotate
    assert torch.equal(at(q, 0), q)


def test_qk_norm_gives_each_head_vector_unit_rms():
    model = randomised("1x2x16").eval()
    captured = {}
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        captured["q"], captured["k"], captured["v"] = q, k, v
        return sdpa(q, k, v, **kwargs)

    torch.nn.functional.scaled_dot_product_attention = spy
    try:
        model(torch.randint(0, V, (3, T)))
    finally:
        torch.nn.functional.scaled_dot_product_attention = sdpa
    for name in ("q", "k"):
        rms = captured[name].pow(2).mean(-1).sqrt()
        assert torch.allclose(rms, torch.ones_like(rms), atol=1e-4), name
    assert not torch.allclose(captured["v"].pow(2).mean(-1).sqrt(), torch.ones(1), atol=1e-2)  # values are not normed


def block_delta(model: GPT, p: float, train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(block input, block output, attention-or-MLP output) of block 0, via hooks."""
    seen = {}
    block = model.blocks[0]
    hooks = [block.register_forward_pre_hook(lambda m, args: seen.__setitem__("x0", args[0].detach())),
             block.register_forward_hook(lambda m, args, out: seen.__setitem__("x2", out.detach())),
             block.attn.register_forward_hook(lambda m, args, out: seen.__setitem__("attn", out.detach())),
             block.mlp.register_forward_hook(lambda m, args, out: seen.__setitem__("mlp", out.detach()))]
    model.train(train)
    model.set_dropout(p)
    with torch.no_grad():
        model(torch.randint(0, V, (8, T)))
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("site", ["attention output", "MLP output"])
def test_each_residual_dropout_site_zeroes_at_its_rate_and_rescales(site):
    model = randomised("1x2x16")
    with torch.no_grad():  # silence the other site, so the block adds exactly this one
        (model.blocks[0].mlp.c_proj if site == "attention output" else model.blocks[0].attn.c_proj).weight.zero_()
    key = "attn" if site == "attention output" else "mlp"
    p = 0.3
    seen = block_delta(model, p, train=True)
    delta, out = seen["x2"] - seen["x0"], seen[key]
    dropped = (delta == 0) & (out != 0)
    assert dropped.float().mean().item() == pytest.approx(p, abs=0.05)
    kept = ~dropped & (out != 0)
    assert torch.allclose(delta[kept], out[kept] / (1 - p), atol=1e-5)
    evaluated = block_delta(model, p, train=False)
    assert torch.allclose(evaluated["x2"] - evaluated["x0"], evaluated[key], atol=1e-6)  # off in eval


def test_embedding_dropout_is_active_in_training_only():
    model = randomised("1x2x16")
    p = 0.4
    idx = torch.randint(0, V, (8, T))
    clean = norm(model.wte(idx)).detach()
    seen = {}
    model.blocks[0].register_forward_pre_hook(lambda m, args: seen.__setitem__("x0", args[0].detach()))
    model.train()
    model.set_dropout(p)
    with torch.no_grad():
        model(idx)
    zero = seen["x0"] == 0
    assert zero.float().mean().item() == pytest.approx(p, abs=0.05)
    assert torch.allclose(seen["x0"][~zero], clean[~zero] / (1 - p), atol=1e-5)
    model.eval()
    with torch.no_grad():
        model(idx)
    assert torch.equal(seen["x0"], clean)


def test_attention_dropout_masks_keys_before_the_softmax_in_training_only():
    model = randomised("1x2x16")
    attn = model.blocks[0].attn
    x = torch.randn(4, T, 16)
    cos, sin = model.cos[:, :T], model.sin[:, :T]
    attn.eval()
    reference = attn(x, cos, sin, 0.5, 2)
    attn.train()
    torch.manual_seed(3)
    trained = attn(x, cos, sin, 0.5, 2)
    assert not torch.allclose(trained, reference, atol=1e-4)  # active in training
    assert torch.equal(attn(x, cos, sin, 0.0, 2), reference)  # p = 0 is the plain model
    # the first query sees only itself, which DropKey always keeps: its output never changes
    assert torch.allclose(trained[:, 0], reference[:, 0], atol=1e-6)


@pytest.mark.parametrize("form", [1, 2])
@pytest.mark.parametrize("n", [64, 7])
def test_drop_key_masks_are_causal_keep_the_diagonal_and_mask_at_the_rate(form, n):
    torch.manual_seed(0)
    p, batch = 0.3, 4000 // n
    keep = keep_keys(batch, 4, n, p, torch.device("cpu"), form)
    assert keep.dtype == torch.bool and keep.shape == (batch, 4, n, n)
    assert not keep.triu(1).any()  # never a later key
    assert keep.diagonal(dim1=-2, dim2=-1).all()  # always itself
    below = torch.ones(n, n, dtype=torch.bool).tril(-1)
    trials = batch * 4 * below.sum().item()
    rate = 1 - keep[..., below].float().mean().item()
    assert rate == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / trials))
    # every position below the diagonal at the rate (form 2 fills three blocks from its draws)
    per_position = 1 - keep.float().mean(dim=(0, 1))[below]
    assert per_position.sub(p).abs().max().item() < 6 * math.sqrt(p * (1 - p) / (batch * 4))


def test_dropkey_attention_keeps_a_one_byte_mask_for_backward_with_the_plain_calls_numbers():
    """The checkpointed attention must give the plain masked call's output and gradients bit for
    bit, while autograd keeps one byte per (query, key) pair where the plain call keeps a float
    mask (an independent oracle: the bytes of every tensor saved for backward, counted by hook)."""
    torch.manual_seed(0)
    B, H, T, D = 3, 4, 32, 8
    q, k, v = (torch.randn(B, H, T, D, requires_grad=True) for _ in range(3))
    keep = keep_keys(B, H, T, 0.3, torch.device("cpu"), 2)

    def saved_bytes_and_grads(attend):
        saved = {}
        def pack(t):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = attend()
        g = torch.linspace(-1, 1, y.numel()).view_as(y)
        return sum(saved.values()), y, torch.autograd.grad(y, (q, k, v), g)

    additive = torch.zeros(B, H, T, T).masked_fill(~keep, -math.inf)
    plain_bytes, plain, plain_grads = saved_bytes_and_grads(
        lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=additive))
    kept_bytes, ours, our_grads = saved_bytes_and_grads(lambda: attend_dropping_keys(q, k, v, keep))
    assert torch.equal(ours, plain) and all(torch.equal(a, b) for a, b in zip(our_grads, plain_grads))
    qkv_bytes, pairs = 3 * B * H * T * D * 4, B * H * T * T
    assert kept_bytes == qkv_bytes + pairs  # q, k, v and the boolean mask: nothing T x T in floats
    assert plain_bytes >= qkv_bytes + 4 * pairs


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
