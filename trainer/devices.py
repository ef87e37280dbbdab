"""The one rule for a ``--device`` value, shared by epsilon-tag and epsilon-train: checked
before anything is loaded or written, resolved once torch is needed."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import BackboneError

if TYPE_CHECKING:  # torch costs a second of imports; checking a name must not
    import torch

DEVICES = "auto, cpu, cuda or cuda:N"


def check_device(device: str) -> str:
    """``device`` as given when PyTorch understands it, else a told error."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise BackboneError(f"the device is {DEVICES}, not {device[:40]!r}")
    return device


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device ``device`` names: auto takes the GPU if there is one; cuda where
    PyTorch sees none is an error, not a silent CPU run."""
    import torch

    check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackboneError(f"device {device} was asked for, but PyTorch sees no CUDA GPU here: use cpu or auto.")
    return torch.device(device)
