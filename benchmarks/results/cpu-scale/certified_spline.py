"""The certified denoiser with learned activations: a per-channel linear spline with slopes in [0, 1]
in every SLL block, as a model every `lipbench` command loads (``certified_spline:build``).

    PYTHONPATH=benchmarks/results/cpu-scale lipbench train --model certified_spline:build \
        --model-kwargs depth=6 width=32 ...        (certified_scale.sh with ACTIVATION=spline does this)

It lives beside the study, not in the package, while no configuration uses it: in the package it
would change the code hash of every published result. Ducotterd et al. (JMLR 2024, "Improving
Lipschitz-constrained neural networks by learning activation functions") show that learned linear
splines make 1-Lipschitz denoisers markedly better than ReLU ones. The SLL block of
:mod:`lipbench.models.certified` stays 1-Lipschitz for any σ whose slopes lie in [0, 1] (its proof
uses ``δ (u − v) ≥ δ²`` for ``δ = σ(u) − σ(v)``, true exactly then), so the spline here keeps every
slope in [0, 1] and σ(0) = 0: it can learn a soft clip or a threshold per channel, which ReLU and
LeakyReLU cannot.

The knots are fixed and uniform, ``t_k = −range + k h`` (``h = 2 range/(knots − 1)``, 0 among them
for odd ``knots``); the ``knots + 1`` slopes (the two outer ones extend to ±∞) are learned and
projected onto [0, 1] in the forward pass with a straight-through gradient, so a slope pushed past
a bound can come back. Evaluation gathers the segment's slope and left value: one pass whatever the
number of knots.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lipbench.models import CertifiedDenoiser


class MonotoneSpline(nn.Module):
    """``σ_c(x)``: continuous, piecewise linear in ``x`` with slopes in [0, 1], ``σ_c(0) = 0``, one per
    channel ``c`` (dimension 1). Initialised as LeakyReLU(``negative_slope``), so that it can take
    over a trained LeakyReLU network's weights unchanged."""

    def __init__(self, channels: int, knots: int = 41, range_: float = 0.2, negative_slope: float = 0.01) -> None:
        super().__init__()
        if knots < 3 or knots % 2 == 0:
            raise ValueError(f"knots must be odd and >= 3 (0 must be a knot), got {knots}")
        if not range_ > 0:
            raise ValueError(f"range must be > 0, got {range_}")
        if not 0 <= negative_slope <= 1:
            raise ValueError(f"negative_slope must be in [0, 1], got {negative_slope}")
        self.knots, self.range = knots, float(range_)
        self.step = 2 * self.range / (knots - 1)
        # segment j (0..knots) lies left of knot j: segments 0..knots//2 are left of 0
        slopes = torch.ones(channels, knots + 1)
        slopes[:, : knots // 2 + 1] = negative_slope
        self.slopes = nn.Parameter(slopes)

    def projected_slopes(self) -> torch.Tensor:
        """The slopes in [0, 1]; the gradient passes through the projection unchanged."""
        return self.slopes + (self.slopes.clamp(0, 1) - self.slopes).detach()

    def knot_values(self, slopes: torch.Tensor) -> torch.Tensor:
        """``σ_c(t_k)`` (``channels × knots``), zero at the middle knot ``t = 0``."""
        rises = slopes[:, 1:-1] * self.step  # over the knots − 1 inner segments
        values = torch.cat([rises.new_zeros(rises.shape[0], 1), rises.cumsum(1)], 1)
        return values - values[:, self.knots // 2 : self.knots // 2 + 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slopes = self.projected_slopes()
        values = self.knot_values(slopes)
        channels = slopes.shape[0]
        if x.shape[1] != channels:
            raise ValueError(f"MonotoneSpline has {channels} channels, the input {x.shape[1]}")
        # segment of x: 0 left of t_0, j for t_{j−1} ≤ x < t_j, knots right of the last knot
        segment = torch.floor((x.detach() + self.range) / self.step).clamp_(-1, self.knots - 1).long() + 1
        anchor = (segment - 1).clamp_(min=0)  # the knot the segment's line passes through
        offset = torch.arange(channels, device=x.device).view(1, -1, *([1] * (x.dim() - 2)))
        slope = slopes.reshape(-1)[segment + offset * (self.knots + 1)]
        value = values.reshape(-1)[anchor + offset * self.knots]
        return value + slope * (x - (anchor.to(x.dtype) * self.step - self.range))

    def extra_repr(self) -> str:
        return f"channels={self.slopes.shape[0]}, knots={self.knots}, range={self.range}"


def build(depth: int = 6, width: int = 32, knots: int = 41, range_: float = 0.2, **kwargs: Any) -> CertifiedDenoiser:
    """A :class:`~lipbench.models.CertifiedDenoiser` (``kwargs``: its other arguments, LeakyReLU's
    ``negative_slope`` among them) whose SLL blocks' σ are :class:`MonotoneSpline` s, each equal to
    the LeakyReLU it replaces: same initial weights, and a LeakyReLU checkpoint loads unchanged
    (the slopes aside)."""
    model = CertifiedDenoiser(depth=depth, width=width, activation="leaky_relu", **kwargs)
    slope = model.blocks[0].activation.negative_slope if len(model.blocks) else 0.01
    for block in model.blocks:
        block.activation = MonotoneSpline(width, knots, range_, slope)
    return model
