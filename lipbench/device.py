"""Device selection: ``auto`` takes CUDA when present (honouring ``CUDA_VISIBLE_DEVICES``)."""

from __future__ import annotations

import torch

from lipbench.errors import LipbenchError


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` → ``cuda`` if available else ``cpu``; otherwise the named device, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise LipbenchError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LipbenchError(f"device {name!r} requested but CUDA is not available: use --device cpu or auto")
    return device
