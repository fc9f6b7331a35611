"""An adversarial search for large ‖∂Q(x)‖² (Q = 2J − Id) over inputs x in [0, 1]ⁿ.

The Jacobian of a conv + (Leaky)ReLU network is piecewise constant in x, so ‖∂Q(x)‖ has no useful
gradient in x. The search ascends a smooth surrogate instead: the same network with every ReLU or
LeakyReLU of slope ``s`` replaced by ``s·t + (1 − s)·softplus(β t)/β`` (:func:`smooth_surrogate`),
which tends to it as β grows. Each step

1. refreshes ``w``, the estimate of the top left singular vector of ``∂Q(x)`` of the *true* network,
   by power steps warm-started from the previous step's (``‖∂Q(x)ᵀ w‖`` is then a lower bound of
   ‖∂Q(x)‖, whatever the surrogate);
2. moves ``x`` along the gradient of the surrogate's ``‖∂Q_β(x)ᵀ w‖²`` (double backpropagation),
   normalised to ``step`` in root-mean-square pixel value, then projects ``x`` onto [0, 1]ⁿ.

It keeps, per sample, the ``x`` with the largest lower bound seen. The caller re-evaluates those
candidates with its own solver and tolerance: the search only proposes points.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lipbench.lipschitz.linearize import ReflectedLinearization, linearize
from lipbench.lipschitz.solver import _expand, _per_sample_norm, start_vector


class SmoothLeakyReLU(nn.Module):
    """``s·t + (1 − s)·softplus(β t)/β``: a LeakyReLU of slope ``s`` (a ReLU for ``s = 0``) smoothed at 0."""

    def __init__(self, negative_slope: float, beta: float) -> None:
        super().__init__()
        self.negative_slope, self.beta = negative_slope, beta

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        s = self.negative_slope
        return s * t + (1 - s) * F.softplus(t, beta=self.beta)


def smooth_surrogate(model: nn.Module, beta: float) -> tuple[nn.Module, int]:
    """A copy of ``model`` (eval mode) with every ``nn.ReLU``/``nn.LeakyReLU`` module replaced by
    :class:`SmoothLeakyReLU` of the same slope, and how many were replaced (0: the copy is the
    model as it is, smooth enough or not)."""
    smooth = copy.deepcopy(model).eval()
    replaced = 0
    for parent in list(smooth.modules()):
        for name, child in parent.named_children():
            if type(child) in (nn.ReLU, nn.LeakyReLU):
                slope = child.negative_slope if isinstance(child, nn.LeakyReLU) else 0.0
                setattr(parent, name, SmoothLeakyReLU(slope, beta))
                replaced += 1
    for p in smooth.parameters():
        p.requires_grad_(False)
    return smooth, replaced


@dataclass(frozen=True)
class SearchResult:
    """``x[b]``: the best point found from start ``b``; ``lower[b]``: its ‖∂Q(x)ᵀw‖² (a lower bound
    of ‖∂Q(x[b])‖² of the true network); ``start[b]``: the same at the start; ``steps``: ascent steps."""

    x: torch.Tensor
    lower: torch.Tensor
    start: torch.Tensor
    steps: int


def reflected_lower_bound(model: nn.Module, x: torch.Tensor, w: torch.Tensor, power_steps: int):
    """``power_steps`` power steps on ∂Q(x)∂Q(x)ᵀ from ``w`` (true network): the new unit ``w`` and
    ``‖∂Q(x)ᵀ w‖²`` per sample."""
    with torch.no_grad():
        lin = ReflectedLinearization(linearize(model, x), x)
        for _ in range(power_steps):
            w = lin.jvp(lin.vjp(w))
            w = w / _expand(_per_sample_norm(w).clamp_min(1e-30), w)
        return w, _per_sample_norm(lin.vjp(w)).square()


def ascend(
    model: nn.Module, surrogate: nn.Module, x: torch.Tensor, w: torch.Tensor, *, step: float, power_steps: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the search from ``x`` (in [0, 1]ⁿ) with left vectors ``w``: the new ``x``, the
    refreshed ``w`` and the new lower bounds ‖∂Q(x)ᵀw‖² of the true ``model`` (module docstring)."""
    z = x.detach().requires_grad_(True)
    with torch.enable_grad():
        q = 2 * surrogate(z) - z
        (g,) = torch.autograd.grad(q, z, w, create_graph=True)  # ∂Q_β(z)ᵀ w
        (direction,) = torch.autograd.grad(g.square().sum(), z)
    rms = _per_sample_norm(direction) / x[0].numel() ** 0.5
    with torch.no_grad():
        x = (x + step * direction / _expand(rms.clamp_min(1e-30), direction)).clamp(0, 1)
    w, lower = reflected_lower_bound(model, x, w, power_steps)
    return x, w, lower


def adversarial_search(
    model: nn.Module,
    starts: torch.Tensor,
    *,
    steps: int = 40,
    step: float = 0.01,
    beta: float = 20.0,
    power_steps: int = 2,
    generator: torch.Generator | None = None,
) -> SearchResult:
    """Search for large ‖∂Q(x)‖² from every sample of ``starts`` (clipped to [0, 1]), as the module
    docstring says. ``model`` must be in eval mode; it is not modified. ``generator``: the start
    vectors of the power steps (seed 0 when None)."""
    surrogate, _ = smooth_surrogate(model, beta)
    x = starts.detach().clamp(0, 1)
    w, lower = reflected_lower_bound(model, x, start_vector(x, generator), power_steps + 8)
    best_x, best, first = x.clone(), lower.clone(), lower.clone()
    for _ in range(steps):
        x, w, lower = ascend(model, surrogate, x, w, step=step, power_steps=power_steps)
        better = lower > best
        best = torch.where(better, lower, best)
        best_x[better] = x[better]
    return SearchResult(x=best_x, lower=best, start=first, steps=steps)
