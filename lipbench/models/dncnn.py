"""DnCNN without batch-norm, as in PnP-MMO: J(x) = x + R(x), R a stack of 3×3 convolutions."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from lipbench.models.clamping import EvalClamped
from lipbench.models.registry import register

if TYPE_CHECKING:
    from lipbench.lipschitz.bounds import UpperBound
    from lipbench.lipschitz.linearize import Builder

ACTIVATIONS = ("leaky_relu", "relu", "silu")
# max_t |SiLU'(t)| = 1.0998… (at t ≈ 2.40), rounded up: the Lipschitz constant of SiLU in the bound
SILU_LIPSCHITZ = 1.1


@register("dncnn")
class DnCNN(EvalClamped):
    """``depth`` 3×3 convolutions of ``width`` channels with an activation after all but the last.

    ``activation``: ``leaky_relu`` (of ``negative_slope``), ``relu`` or ``silu`` (smooth, so ∂J(x) is
    continuous in x and a penalty at finitely many points constrains it nearby too).

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
        act = {"leaky_relu": lambda: nn.LeakyReLU(negative_slope), "relu": nn.ReLU, "silu": nn.SiLU}[activation]
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
        """The fast Jacobian products of :mod:`lipbench.lipschitz.linearize`: a conv + activation stack
        with the residual and the eval-mode clamps (None with batch-norm in training mode)."""
        from lipbench.lipschitz.linearize import piecewise_linear  # on use: importing a model loads no solver

        return piecewise_linear(self.body, residual=self.residual, clamps=self.clamps)

    def fne_upper_bound(self, shape: tuple[int, int]) -> UpperBound:
        """sup_x ‖∂Q(x)‖² ≤ (1 + 2·L^a·∏ᵢ‖Wᵢ‖)² on H×W = ``shape`` images (``Q = 2J − Id``).

        ``‖Wᵢ‖``: :func:`~lipbench.lipschitz.bounds.conv_norm_bound` of each convolution, an eval-mode
        batch-norm's scale ``γ/sqrt(var + eps)`` folded into the preceding one's output channels;
        ``L = max(1, |slope|)`` per (Leaky)ReLU, :data:`SILU_LIPSCHITZ` per SiLU (``a`` of them). So ‖∂R‖ ≤ L^a·∏‖Wᵢ‖, and ``Q = Id + 2R``
        (residual) or ``2R − Id`` has ‖∂Q‖ ≤ 1 + 2‖∂R‖. The eval-mode clamps keep this: the Jacobian of
        ``clamp∘J∘clamp`` is ``D_o(I + ∂R)D_i`` (``D`` diagonal 0/1), and ``‖2D_oD_i − I‖ = 1``,
        ``‖2D_o∂R D_i‖ ≤ 2‖∂R‖`` (non-residual: ``2D_o∂R D_i − I``). ValueError with batch-norm in training mode.
        """
        from lipbench.lipschitz.bounds import UpperBound, conv_norm_bound  # on use, as fast_linearization

        convs: list[list] = []  # [conv, output scale or None]
        lip_act, activations = 1.0, 0
        for layer in self.body:
            if isinstance(layer, nn.Conv2d):
                convs.append([layer, None])
            elif isinstance(layer, nn.BatchNorm2d):
                if layer.training or layer.running_var is None:
                    raise ValueError("fne_upper_bound needs batch-norm in eval mode, with running statistics")
                scale = torch.rsqrt(layer.running_var + layer.eps)
                convs[-1][1] = scale if layer.weight is None else scale * layer.weight
            elif isinstance(layer, nn.LeakyReLU | nn.ReLU | nn.SiLU):
                activations += 1
                slope = abs(layer.negative_slope) if isinstance(layer, nn.LeakyReLU) else 1.0
                lip_act = max(lip_act, SILU_LIPSCHITZ if isinstance(layer, nn.SiLU) else slope)
            else:
                raise ValueError(f"fne_upper_bound: no bound for the layer {layer}")
        product = lip_act**activations * math.prod(conv_norm_bound(c, shape, out_scale=s) for c, s in convs)
        factor = f"{lip_act:g}^{activations}·" if lip_act != 1 else ""
        folded = ", batch-norm folded" if any(s is not None for _, s in convs) else ""
        how = f"1 + 2·{factor}∏‖Wᵢ‖ over {len(convs)} convolutions at {shape[0]}×{shape[1]} (FFT, zero padding{folded})"
        return UpperBound((1 + 2 * product) ** 2, how)
