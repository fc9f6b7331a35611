"""The papers' test-time clipping, shared by every denoiser: in eval mode with ``clamp`` set, the
input and the output of ``J`` are clamped to [0, 1]; training never clamps."""

from __future__ import annotations

import torch
from torch import nn


class EvalClamped(nn.Module):
    """A denoiser whose ``forward`` is :meth:`denoise`, clamped per ``clamp`` (set by subclasses)."""

    clamp: bool = False

    @property
    def clamps(self) -> bool:
        """Whether this call clamps input and output (eval mode with ``clamp=True``)."""
        return self.clamp and not self.training

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.clamps:
            return self.denoise(x)
        return self.denoise(x.clamp(0, 1)).clamp(0, 1)
