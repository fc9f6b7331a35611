"""Device selection (``auto`` takes CUDA when present, honouring ``CUDA_VISIBLE_DEVICES``) and
``torch.compile`` of denoisers."""

from __future__ import annotations

import torch
from torch import nn

from lipbench.plumbing.errors import LipbenchError


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` → ``cuda`` if available else ``cpu``; otherwise the named device, checked (CUDA
    present, and a ``cuda:N`` index below the number of visible devices)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise LipbenchError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LipbenchError(f"device {name!r} requested but CUDA is not available: use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise LipbenchError(
            f"--device {name}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1}); "
            "use one of them, or cpu"
        )
    return device


COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "eager")


class _ClonedOutputs(nn.Module):
    """CUDA-graph replays (``reduce-overhead``) reuse their output buffers: a PnP loop that keeps
    ``x_k`` while computing ``J(x_{k+1})`` needs each output copied out of the graph's pool."""

    def __init__(self, compiled: nn.Module) -> None:
        super().__init__()
        self.compiled = compiled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        return self.compiled(x).clone()


def compile_denoiser(model: nn.Module, mode: str) -> nn.Module:
    """``torch.compile`` a denoiser for many calls at fixed shapes (PnP): ``none`` returns ``model``;
    ``default``, ``reduce-overhead`` (CUDA graphs) and ``max-autotune`` are inductor's modes;
    ``eager`` only traces (no code generation: checks the compiled path quickly, e.g. on a CPU)."""
    if mode not in COMPILE_MODES:
        raise LipbenchError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
    if mode == "none":
        return model
    if mode == "eager":
        return torch.compile(model, backend="eager", dynamic=False)
    compiled = torch.compile(model, mode=mode, dynamic=False)
    return _ClonedOutputs(compiled) if mode == "reduce-overhead" else compiled
