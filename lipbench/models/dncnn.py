"""DnCNN without batch-norm, as in PnP-MMO: J(x) = x + R(x), R a stack of 3×3 convolutions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from lipbench.models.clamping import EvalClamped
from lipbench.models.registry import register

if TYPE_CHECKING:
    from lipbench.lipschitz.linearize import Builder

ACTIVATIONS = ("leaky_relu", "relu")


@register("dncnn")
class DnCNN(EvalClamped):
    """``depth`` 3×3 convolutions of ``width`` channels with an activation after all but the last.

    ``residual``: ``J(x) = x + R(x)`` (else ``J = R``). ``batchnorm`` adds BatchNorm2d after the
    hidden convolutions (off by default, as in the papers). ``clamp``: in eval mode the input and
    the output are clamped to [0, 1], as the papers do at test time; training never clamps.
    """

    def __init__(
        self,
        channels: int = 1,
        depth: int = 20,
        width: int = 64,
        activation: str = "leaky_relu",
        negative_slope: float = 0.01,
        bias: bool = True,
        residual: bool = True,
        batchnorm: bool = False,
        clamp: bool = False,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        act = (lambda: nn.LeakyReLU(negative_slope)) if activation == "leaky_relu" else nn.ReLU
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1, bias=bias), act()]
        for _ in range(depth - 2):
            layers.append(nn.Conv2d(width, width, 3, padding=1, bias=bias and not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(act())
        layers.append(nn.Conv2d(width, channels, 3, padding=1, bias=bias))
        self.body = nn.Sequential(*layers)
        self.residual = residual
        self.clamp = clamp

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out

    def fast_linearization(self) -> Builder | None:
        """The fast Jacobian products of :mod:`lipbench.lipschitz.linearize`: a conv + (Leaky)ReLU stack
        with the residual and the eval-mode clamps (None with batch-norm in training mode)."""
        from lipbench.lipschitz.linearize import piecewise_linear  # on use: importing a model loads no solver

        return piecewise_linear(self.body, residual=self.residual, clamps=self.clamps)
