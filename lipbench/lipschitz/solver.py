"""What every spectral-norm solver shares: its result, its error, its start vectors and the batch-norm
check (the solvers themselves: :mod:`~lipbench.lipschitz.power`, :mod:`~lipbench.lipschitz.lanczos`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lipbench.plumbing.errors import LipbenchError


class LipschitzError(LipbenchError):
    """The spectral norm cannot be estimated for this model or input."""


@dataclass(frozen=True)
class SpectralNorm:
    """``sigma[b]`` ≈ ‖∂f(x_b)‖₂ (a lower bound: a Rayleigh quotient); ``vector[b]`` the unit
    top right singular vector estimate; ``converged[b]`` whether sample b met ``tol``;
    ``steps[b]`` the iterations sample b used; ``iterations`` the loop's count (their maximum)."""

    sigma: torch.Tensor
    vector: torch.Tensor
    iterations: int
    converged: torch.Tensor
    steps: torch.Tensor


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def check_no_training_batchnorm(f: object) -> None:
    """Refuse batch-norm in training mode: its Jacobian mixes the samples of a batch."""
    if isinstance(f, nn.Module) and any(isinstance(m, _BatchNorm) and m.training for m in f.modules()):
        raise LipschitzError(
            "the model has batch-norm in training mode, so its Jacobian mixes samples: call model.eval() first"
        )


def start_vector(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Unit-norm Gaussian start vectors, drawn on the CPU from ``generator`` (seed 0 when None)."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    u = torch.randn(x.shape, generator=g, dtype=x.dtype, device=g.device).to(x.device)
    return u / _expand(_per_sample_norm(u), u)
