"""Numerical precision on CUDA: TF32 for float32 convolutions and matmuls, bf16 autocast, memory layout.

TF32 runs float32 convolutions and matrix products on the tensor cores with a 10-bit mantissa
(relative error about 5e-4 per product). lipbench allows it for training, where it only perturbs
the optimisation, and forbids it by default where numbers are reported: spectral-norm estimates,
PnP restorations and their PSNR (``docs/performance.md`` measures what it changes). TF32 does not
exist on the CPU, so CPU results never depend on it; bf16 autocast and ``channels_last`` act on
every device (``channels_last`` changes the rounding of convolutions, not their values beyond it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from lipbench.plumbing.errors import LipbenchError

AMP = ("none", "bf16")


def _fp32_backends() -> list:
    """The backends whose float32 precision lipbench sets (new API, torch >= 2.9)."""
    return [torch.backends.cudnn.conv, torch.backends.cuda.matmul]


def tf32_enabled() -> bool:
    """Whether float32 convolutions and matmuls are both set to TF32."""
    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        return all(b.fp32_precision == "tf32" for b in _fp32_backends())
    return bool(torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32)  # pragma: no cover


@contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """Allow (or forbid) TF32 for float32 convolutions and matmuls inside the block; restores the
    previous settings on exit. Uses the ``fp32_precision`` API where torch has it (mixing it with the
    legacy ``allow_tf32`` flags makes torch raise), else the legacy flags."""
    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        backends = _fp32_backends()
        saved = [b.fp32_precision for b in backends]
        try:
            for b in backends:
                b.fp32_precision = "tf32" if enabled else "ieee"
            yield
        finally:
            for b, value in zip(backends, saved, strict=True):
                b.fp32_precision = value
    else:  # pragma: no cover - torch < 2.9
        saved_flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        try:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved_flags


def autocast(amp: str, device: torch.device) -> torch.autocast:
    """``torch.autocast`` for ``amp`` (``"none"``: a disabled context; ``"bf16"``: bfloat16)."""
    if amp not in AMP:
        raise LipbenchError(f"amp must be one of {AMP}, got {amp!r}")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp == "bf16")


def to_channels_last(model: nn.Module, enabled: bool) -> nn.Module:
    """Store the model's 4-D weights as NHWC (``channels_last``) when ``enabled``; returns the model."""
    return model.to(memory_format=torch.channels_last) if enabled else model


def layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` in the memory layout the model expects (NHWC if ``channels_last``)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x
