"""The GPT, its dropout, model specs, schedules and the MPS gate."""

import math

import pytest
import torch

from dropout_decay.training.device import select_device
from dropout_decay.common.errors import UsageError
from dropout_decay.model.gpt import GPT, parse_model_spec

SPEC = parse_model_spec("2x2x32")


def tiny(seed=0, seq_len=16, vocab=64):
    torch.manual_seed(seed)
    return GPT(SPEC, vocab, seq_len)


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


def randomised(seed=0):
    model = tiny(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


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


def test_mps_gate_refuses_each_condition(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK", raising=False)
    assert select_device("mps").mps_compliant  # all conditions met
    monkeypatch.setenv("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    with pytest.raises(UsageError, match="PYTORCH_ENABLE_MPS_FALLBACK=1"):
        select_device("mps")
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UsageError, match="MPS is unavailable"):
        select_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: False)
    with pytest.raises(UsageError, match="not built with MPS"):
        select_device("mps")


def test_explicit_other_devices_are_not_compliant(monkeypatch):
    cpu = select_device("cpu")
    assert cpu.name == "cpu" and not cpu.mps_compliant and "NOT an MPS run" in cpu.note
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="CUDA is unavailable"):
        select_device("cuda")
    with pytest.raises(UsageError, match="unknown device"):
        select_device("tpu")
