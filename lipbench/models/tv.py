"""The TV proximal operator as a parameter-free denoiser: the TV baseline's J."""

from __future__ import annotations

import math
from numbers import Real

import torch

from lipbench.models.clamping import EvalClamped
from lipbench.models.registry import register
from lipbench.tv import tv_prox


@register("tv")
class TVDenoiser(EvalClamped):
    """The TV proximal operator ``x ↦ tv_prox(x, weight, iters)`` as a parameter-free denoiser.

    The proximal operator of a convex function is firmly nonexpansive (``‖Px − Py‖² ≤ ⟨Px − Py, x − y⟩``),
    hence 1-Lipschitz: a baseline for the Lipschitz-constrained denoisers (up to the truncation at ``iters``).
    ``clamp``: in eval mode the input and output are clamped to [0, 1], as for DnCNN. ``channels``: the
    number of channels ``forward`` accepts (each is denoised separately).
    """

    def __init__(self, weight: float = 0.05, iters: int = 100, clamp: bool = False, channels: int = 1) -> None:
        super().__init__()
        if isinstance(weight, bool) or not isinstance(weight, Real) or not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight must be a finite float >= 0, got {weight!r}")
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
            raise ValueError(f"iters must be an int >= 1, got {iters!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an int >= 1, got {channels!r}")
        self.weight = float(weight)
        self.iters = iters
        self.clamp = clamp
        self.channels = channels

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must be B×{self.channels}×H×W, got shape {tuple(x.shape)}")
        return tv_prox(x, self.weight, self.iters)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, iters={self.iters}, clamp={self.clamp}, channels={self.channels}"
