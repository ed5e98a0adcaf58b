"""The GPT (model/gpt.py): shapes, init, causality, parameter count, model specs, dropout in train
mode only; against a separately written reference forward pass, and each part's defining
property (rotary, QK norm, every dropout site at its rate, DropKey's one-byte mask)."""

import math

import pytest
import torch

from dropout_decay.common.errors import UsageError
from dropout_decay.model.gpt import (
    GPT,
    attend_dropping_keys,
    norm,
    parse_model_spec,
    rotate,
    softcapped_cross_entropy,
)
from dropout_decay.model.masks import keep_keys

SPEC = parse_model_spec("2x2x32")


def tiny(seed=0, seq_len=16, vocab=64):
    torch.manual_seed(seed)
    return GPT(SPEC, vocab, seq_len)


def randomised(seed=0):
    model = tiny(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


V, T = 50, 12


def random_weights(spec="2x2x16", seed=0) -> GPT:
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


def test_shapes_and_softcap():
    model = tiny()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 50.0)  # huge logits must still be capped at 15
        logits = model(torch.randint(0, 64, (3, 16)))
    assert logits.shape == (3, 16, 64) and logits.dtype == torch.float32
    assert logits.abs().max() <= 15.0 and logits.abs().max() > 14.0


def test_fresh_model_predicts_uniform_because_its_head_starts_at_zero():
    model = tiny()
    x = torch.randint(0, 64, (2, 17))
    assert model.lm_head.weight.abs().sum() == 0
    assert model(x[:, :-1], x[:, 1:]).item() == pytest.approx(math.log(64), abs=1e-5)


def test_causal_future_tokens_do_not_change_past_logits():
    model = tiny()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)  # zero-initialised projections would hide any leak
        x = torch.randint(0, 64, (1, 16))
        y = x.clone()
        y[0, 10:] = (y[0, 10:] + 7) % 64
        a, b = model(x), model(y)
    assert torch.equal(a[0, :10], b[0, :10])
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_parameter_count_formula():
    spec = parse_model_spec("3x4x48")
    assert sum(p.numel() for p in GPT(spec, 100, 8).parameters()) == spec.n_params(100)


def test_no_biases_untied_head_and_zero_output_projections():
    model = tiny()
    assert all("bias" not in n for n, _ in model.named_parameters())
    assert model.lm_head.weight.data_ptr() != model.wte.weight.data_ptr()
    assert all(b.attn.c_proj.weight.abs().sum() == 0 and b.mlp.c_proj.weight.abs().sum() == 0 for b in model.blocks)


def test_dropout_active_in_train_mode_and_absent_in_eval():
    model = randomised()
    x = torch.randint(0, 64, (2, 16))
    model.set_dropout(0.3)
    model.train()
    assert not torch.allclose(model(x), model(x))  # masks differ between calls
    model.eval()
    assert torch.equal(model(x), model(x))


def test_p_zero_is_exactly_the_dropout_free_model():
    x = torch.randint(0, 64, (2, 16))
    a, b = randomised(), randomised()
    a.train()
    b.eval()
    a.set_dropout(0.0)
    torch.manual_seed(123)
    out_train = a(x)
    assert torch.equal(out_train, b(x))
    # and it consumes no random numbers
    torch.manual_seed(5)
    a(x)
    assert torch.equal(torch.rand(3), (torch.manual_seed(5), torch.rand(3))[1])


def test_rate_change_between_steps_takes_effect():
    model = randomised()
    model.train()
    x = torch.randint(0, 64, (4, 16))
    ref = model.eval()(x)
    model.train()
    model.set_dropout(0.5)
    far = (model(x) - ref).abs().mean()
    model.set_dropout(0.05)
    near = (model(x) - ref).abs().mean()
    assert far > 2 * near > 0


@pytest.mark.parametrize("text", ["12x8x384", "winner=12x8x384"])
def test_model_spec_parses(text):
    spec = parse_model_spec(text)
    assert (spec.depth, spec.heads, spec.width) == (12, 8, 384)
    assert spec.label == ("winner" if "=" in text else "12x8x384")
    assert str(spec) == text and parse_model_spec(str(spec)) == spec  # written into configs, read back


def test_flops_per_token_matches_the_matmuls_torch_counts():
    """6 per weight per token is what the matmuls of a training step cost; the attention term is
    what a plain (unfused, full T x T) attention of the same shape costs forward and backward."""
    from torch.utils.flop_counter import FlopCounterMode

    B, T, spec = 3, 32, parse_model_spec("2x4x64")
    model = GPT(spec, 512, T)
    idx = torch.randint(0, 512, (B, T))
    with FlopCounterMode(display=False) as weights:  # SDPA on a CPU is not counted: only the Linears
        model(idx, idx).backward()
    q, k, v = (torch.randn(B, spec.heads, T, spec.width // spec.heads, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as attention:
        ((q @ k.transpose(-2, -1)).softmax(-1) @ v).sum().backward()
    counted = weights.get_total_flops() + spec.depth * attention.get_total_flops()
    assert model.flops_per_token() * B * T == counted


@pytest.mark.parametrize(
    "text, message",
    [("12x8", "expected DEPTHxHEADSxWIDTH"), ("0x8x384", "positive"), ("12x7x384", "not divisible"),
     ("2x4x36", "must be even"), ("big", "expected"), ("=12x8x384", "expected"), ("12x8x384x1", "expected")],
)
def test_bad_model_specs(text, message):
    with pytest.raises(UsageError, match=message):
        parse_model_spec(text)


def test_logits_match_a_separately_written_reference_forward_pass():
    model = random_weights().eval()
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
    model = random_weights("1x2x16").eval()
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


@pytest.mark.parametrize("site", ["attention output", "MLP output"])
def test_each_residual_dropout_site_zeroes_at_its_rate_and_rescales(site):
    model = random_weights("1x2x16")
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
    model = random_weights("1x2x16")
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
    model = random_weights("1x2x16")
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


@pytest.mark.parametrize("spread", [1.0, 200.0])  # ordinary logits, and logits far past the cap
def test_the_compiled_paths_loss_is_the_soft_capped_cross_entropy_in_float64(spread):
    """Its sigmoid form and logsumexp give the eager form's value and gradient to rounding: the
    oracle is the definition, 15 tanh(x/15) and log-softmax, in float64."""
    torch.manual_seed(3)
    raw = (torch.randn(2, 5, 64) * spread).requires_grad_()
    targets = torch.randint(0, 64, (2, 5))
    loss = softcapped_cross_entropy(raw, targets)
    loss.backward()
    exact = raw.detach().double().requires_grad_()
    capped = 15 * torch.tanh(exact / 15)
    want = -torch.log_softmax(capped, -1).gather(-1, targets[..., None]).mean()
    want.backward()
    assert loss.dtype == torch.float32 and abs(loss.item() - want.item()) < 2e-6
    torch.testing.assert_close(raw.grad.double(), exact.grad, rtol=0, atol=1e-7)
    eager = torch.nn.functional.cross_entropy(15 * torch.tanh(raw.detach().view(-1, 64) / 15), targets.view(-1))
    assert abs(loss.item() - eager.item()) < 2e-6  # and the eager path's own float32 value
