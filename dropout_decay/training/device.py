"""The device gate: runs are MPS-only unless the user explicitly chooses another device.

Checked before any model is built. Any other device is allowed only by name, and the run's
results then carry `mps_compliant: false`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..common import UsageError

DEVICES = ("mps", "cpu", "cuda")


@dataclass(frozen=True)
class DeviceChoice:
    name: str
    mps_compliant: bool

    @property
    def note(self) -> str:
        return "MPS run" if self.mps_compliant else f"NOT an MPS run: device {self.name} chosen explicitly"


def select_device(name: str = "mps") -> DeviceChoice:
    if name == "mps":
        if os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") == "1":
            raise UsageError("PYTORCH_ENABLE_MPS_FALLBACK=1 is set: MPS runs must not fall back to the CPU; unset it")
        if not torch.backends.mps.is_built():
            raise UsageError("this PyTorch was not built with MPS; install a macOS arm64 build, or pass --device cpu")
        if not torch.backends.mps.is_available():
            raise UsageError("MPS is unavailable on this machine (needs Apple silicon, macOS 12.3+); "
                             "pass --device cpu to run off-MPS explicitly")
        return DeviceChoice("mps", True)
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda chosen but CUDA is unavailable")
        return DeviceChoice("cuda", False)
    if name == "cpu":
        return DeviceChoice("cpu", False)
    raise UsageError(f"unknown device {name!r} (choose from {', '.join(DEVICES)})")
