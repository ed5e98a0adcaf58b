"""The MPS gate (training/device.py): each condition refused; other devices are never compliant."""

import pytest
import torch

from dropout_decay.common.errors import UsageError
from dropout_decay.training.device import select_device


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
