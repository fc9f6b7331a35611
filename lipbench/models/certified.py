"""A denoiser firmly nonexpansive by construction: ``J = (Id + Q)/2`` with ``Q`` 1-Lipschitz in ℓ2.

``Q`` = AOL-rescaled lift (``channels → width``) → SLL residual blocks (``width → width``) →
AOL-rescaled projection (``width → channels``), every map 1-Lipschitz for zero padding at every
image size, so ``J`` is firmly nonexpansive (``J`` is FNE iff ``2J − Id = Q`` is nonexpansive) and
PnP-PGD with it converges for ``γ < 2/‖AᵀA‖`` with no penalty in training.

* SLL block (Araujo et al., ICLR 2023, "A unified algebraic perspective on Lipschitz neural
  networks"): ``h(x) = x − 2α Cᵀ T⁻¹ σ(C x + b)``, ``C`` a 3×3 convolution, ``σ`` ReLU or LeakyReLU
  (slopes in [0, 1]), ``T = diag(t)`` per hidden channel with ``t_i = Σ_j Σ_s |G_ij(s)| q_j / q_i``,
  ``G`` the kernel of ``C Cᵀ`` (:func:`gram_kernel`), ``q = exp(log_q)``, and ``α = sigmoid(gate)``.

  Proof sketch. (1) ``T ⪰ C Cᵀ`` on ℓ2(ℤ²): for the symmetric operator ``M = C Cᵀ`` and any
  ``q > 0``, ``uᵀ M u ≤ Σ |M_ab| |u_a| |u_b| ≤ Σ |M_ab| (q_b/q_a u_a² + q_a/q_b u_b²)/2 =
  Σ_a u_a² Σ_b |M_ab| q_b/q_a`` (Schur test); with ``q`` constant over pixels the row sum is
  ``t_i`` at every pixel. (2) Zero padding: ``C_zp = P C E`` (``E`` extends by zeros, ``P = Eᵀ``
  restricts to the H×W window), so ``C_zp C_zpᵀ = P C E Eᵀ Cᵀ Pᵀ ⪯ P C Cᵀ Pᵀ ⪯ P T Pᵀ = T`` at every
  size. (3) With ``Δ = x − y``, ``δ = σ(Cx + b) − σ(Cy + b)``: ``δ_i (CΔ)_i ≥ δ_i²`` (slopes in
  [0, 1]), so ``‖h(x) − h(y)‖² = ‖Δ‖² − 4α⟨CΔ, T⁻¹δ⟩ + 4α²⟨T⁻¹δ, C Cᵀ T⁻¹δ⟩ ≤ ‖Δ‖² −
  4α(1 − α)⟨δ, T⁻¹δ⟩ ≤ ‖Δ‖²`` for ``α ∈ (0, 1]`` (``α = 1``: the paper's layer; ``α < 1``: the
  convex combination ``(1 − α) Id + α h₁`` of two 1-Lipschitz maps). ``t`` gets ``+ EPS`` against
  0 (a larger ``T`` keeps ``T ⪰ C Cᵀ``).

  The gate α is not in the paper: the rest of the block is invariant to the scale of ``C`` (``T``
  scales as ``|C|²``), so small weights do not make ``h`` close to the identity; α does. It starts
  at ``GATE_INIT`` so that ``Q ≈ Id`` at initialisation and training learns the residual.
* AOL rescaling (Prach & Lampert, ECCV 2022): ``W' = W diag(d)``, ``d_j = (Σ_k Σ_s |(WᵀW)_jk(s)|
  + EPS)^{-1/2}``, so ``W'ᵀW' ⪯ I`` by the same Schur test (weights ``1/d``; the ``EPS`` only
  shrinks ``d``) and the same zero-padding compression. ``‖W‖ = ‖Wᵀ‖``, so the scaling may act on
  either side: the lift scales its inputs (``channels``), the projection its outputs (``channels``),
  the narrow side in both. At the delta initialisation the projection's input columns
  ``channels..width−1`` are zero, and an input-side scaling would give them ``d = EPS^{-1/2}``
  and as large a gradient.

``T`` and the AOL scalings depend on the weights only and are computed once per forward, with no
loops over pixels or channels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from lipbench.models.clamping import EvalClamped
from lipbench.models.registry import register

if TYPE_CHECKING:
    from lipbench.lipschitz.bounds import UpperBound

ACTIVATIONS = ("leaky_relu", "relu")
EPS = 1e-12
GATE_INIT = 0.05  # α of every SLL block at initialisation
KERNEL = 3


def gram_kernel(weight: torch.Tensor) -> torch.Tensor:
    """The kernel ``G`` (``out×out×(2k−1)×(2k−1)``) of ``W Wᵀ`` for the stride-1 convolution ``W``
    with ``weight`` (``out×in×k×k``, cross-correlation as ``F.conv2d``): on the infinite grid
    ``(W Wᵀ)_{(i, p), (j, p + s)} = G[i, j, s + k − 1]`` (``G_ij(s) = G_ji(−s)``). For ``WᵀW``
    pass ``weight.transpose(0, 1)``."""
    k = weight.shape[-1]
    return F.conv2d(weight, weight, padding=k - 1)


def _absolute_row_sums(weight: torch.Tensor) -> torch.Tensor:
    """``A_ij = Σ_s |G_ij(s)|`` of :func:`gram_kernel` (symmetric, ``out×out``)."""
    return gram_kernel(weight).abs().sum((-2, -1))


def sll_scale(weight: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``t_i = Σ_j A_ij q_j / q_i + EPS`` of the SLL layer with ``C`` = ``weight``
    (``T = diag(t) ⪰ C Cᵀ``)."""
    a = _absolute_row_sums(weight)
    t = (a * torch.exp(log_q[None, :] - log_q[:, None])).sum(1) + EPS
    return t


def aol_scale(weight: torch.Tensor, side: str = "in") -> torch.Tensor:
    """AOL's ``d`` for the convolution ``W`` = ``weight``: per input channel (``side="in"``,
    ``‖W diag(d)‖ ≤ 1``) or per output channel (``"out"``, ``‖diag(d) W‖ ≤ 1``)."""
    if side not in ("in", "out"):
        raise ValueError(f"side must be 'in' or 'out', got {side!r}")
    a = _absolute_row_sums(weight.transpose(0, 1) if side == "in" else weight)
    return torch.rsqrt(a.sum(1) + EPS)


def _adjoint(y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``Cᵀ y`` for ``C`` = 3×3 conv, padding 1: ``conv_transpose2d(y, weight, padding=1)`` as a
    conv2d with the flipped, transposed kernel (cuDNN's transposed conv is slow, see
    :func:`lipbench.lipschitz.linearize._conv_transpose`)."""
    return F.conv2d(y, weight.flip(-1, -2).transpose(0, 1), None, 1, KERNEL // 2)


def _conv_weight(out_channels: int, in_channels: int) -> nn.Parameter:
    weight = torch.empty(out_channels, in_channels, KERNEL, KERNEL)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Conv2d's default
    return nn.Parameter(weight)


def _delta_weight(out_channels: int, in_channels: int) -> nn.Parameter:
    """Channel ``c`` to channel ``c`` through the kernel's centre, ``c < min(out, in)``."""
    weight = torch.zeros(out_channels, in_channels, KERNEL, KERNEL)
    n = min(out_channels, in_channels)
    weight[torch.arange(n), torch.arange(n), KERNEL // 2, KERNEL // 2] = 1.0
    return nn.Parameter(weight)


class SLLBlock(nn.Module):
    """``h(x) = x − 2α Cᵀ T⁻¹ σ(C x + b)``: 1-Lipschitz for zero padding (see the module docstring)."""

    def __init__(self, width: int, activation: nn.Module, bias: bool = True) -> None:
        super().__init__()
        self.weight = _conv_weight(width, width)
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None
        self.log_q = nn.Parameter(torch.zeros(width))
        self.gate = nn.Parameter(torch.tensor(math.log(GATE_INIT / (1 - GATE_INIT))))
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 2 * torch.sigmoid(self.gate) / sll_scale(self.weight, self.log_q)
        z = self.activation(F.conv2d(x, self.weight, self.bias, 1, KERNEL // 2))
        return x - _adjoint(z * scale[:, None, None], self.weight)


class AOLConv(nn.Module):
    """A 3×3 convolution (padding 1) rescaled by AOL on ``side``: ‖linear part‖₂ ≤ 1 at every size."""

    def __init__(self, in_channels: int, out_channels: int, side: str, bias: bool = True) -> None:
        super().__init__()
        if side not in ("in", "out"):
            raise ValueError(f"side must be 'in' or 'out', got {side!r}")
        self.side = side
        self.weight = _delta_weight(out_channels, in_channels)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def rescaled_weight(self) -> torch.Tensor:
        d = aol_scale(self.weight, self.side)
        return self.weight * (d[None, :, None, None] if self.side == "in" else d[:, None, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.rescaled_weight(), self.bias, 1, KERNEL // 2)


@register("certified")
class CertifiedDenoiser(EvalClamped):
    """``J(x) = (x + Q(x))/2`` with ``Q`` = lift → ``depth − 2`` SLL blocks → projection, each
    1-Lipschitz in ℓ2 for zero padding at any image size: J is firmly nonexpansive by construction.

    ``depth`` counts the 3×3 weights as in :class:`~lipbench.models.dncnn.DnCNN` (the lift, one per
    SLL block, the projection), so equal ``depth`` and ``width`` give nearly equal parameter counts
    (an SLL block applies its weight twice, as ``C`` and ``Cᵀ``); ``depth = 2`` is a linear ``Q``.
    ``bias``: biases in the lift, the projection and inside σ. ``clamp``: in eval mode the input and
    the output are clamped to [0, 1], as DnCNN; ``clamp ∘ J ∘ clamp`` is still nonexpansive and averaged
    (a composition of three firmly nonexpansive maps) but not firmly nonexpansive in general.
    At initialisation the lift and projection are channel-to-channel deltas
    (which AOL leaves unchanged) and every block's gate is ``GATE_INIT``, so ``J ≈ Id``.
    """

    def __init__(
        self,
        channels: int = 1,
        depth: int = 6,
        width: int = 32,
        activation: str = "relu",
        negative_slope: float = 0.01,
        bias: bool = True,
        clamp: bool = False,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if depth < 2:
            raise ValueError(f"depth must be >= 2 (the lift and the projection), got {depth}")
        if width < channels:
            raise ValueError(f"width must be >= channels ({channels}), got {width}")
        if activation == "leaky_relu" and not 0 <= negative_slope <= 1:
            raise ValueError(f"negative_slope must be in [0, 1] for a 1-Lipschitz SLL block, got {negative_slope}")
        act = (lambda: nn.LeakyReLU(negative_slope)) if activation == "leaky_relu" else nn.ReLU
        self.lift = AOLConv(channels, width, "in", bias)
        self.blocks = nn.ModuleList(SLLBlock(width, act(), bias) for _ in range(depth - 2))
        self.project = AOLConv(width, channels, "out", bias)
        self.clamp = clamp

    def reflected(self, x: torch.Tensor) -> torch.Tensor:
        """``Q(x)``, 1-Lipschitz, never clamped."""
        h = self.lift(x)
        for block in self.blocks:
            h = block(h)
        return self.project(h)

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.reflected(x)) / 2

    def fne_upper_bound(self, shape: tuple[int, int]) -> UpperBound:
        """sup_x ‖∂Q(x)‖² ≤ 1 at every size, by construction (see the module docstring). The bound is
        for J unclamped: with ``clamp``, ``clamp ∘ J ∘ clamp`` is a composition of FNE maps, not FNE
        in general (only 3/4-averaged, so ‖∂Q‖² ≤ 4; tests/test_bounds.py finds 1.04), so it is not
        certified by this bound; the same bound is returned."""
        from lipbench.lipschitz.bounds import UpperBound  # on use: importing a model loads no solver

        return UpperBound(1.0, "1 by construction (SLL/AOL layers)")
