"""The firm-nonexpansiveness penalty of PnP-MMO: λ · max{‖∂Q(x̃)‖², 1 − ε}, Q = 2J − Id."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lipbench.lipschitz.linearize import Reflected, linearize
from lipbench.lipschitz.power import check_no_training_batchnorm, power_iteration


@dataclass(frozen=True)
class Penalty:
    """``value``: the differentiable penalty (before λ); ``sigma2``: ‖∂Q(x̃_b)‖² per sample (detached)."""

    value: torch.Tensor
    sigma2: torch.Tensor
    iterations: int


def interpolate(
    model: nn.Module,
    x_clean: torch.Tensor,
    y_noisy: torch.Tensor,
    generator: torch.Generator,
    denoised: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x̃ = τ J(y) + (1 − τ) x`` with ``τ ~ U[0, 1]`` per sample (drawn on the CPU), detached.

    ``denoised``: ``J(y)`` if the caller already has it (saves a forward pass).
    """
    tau = torch.rand(x_clean.shape[0], generator=generator, dtype=x_clean.dtype, device=generator.device)
    tau = tau.to(x_clean.device).view(-1, *([1] * (x_clean.ndim - 1)))
    with torch.no_grad():
        jy = model(y_noisy) if denoised is None else denoised.detach()
        return tau * jy + (1 - tau) * x_clean


def fne_penalty(
    model: nn.Module,
    x_clean: torch.Tensor,
    y_noisy: torch.Tensor,
    *,
    eps: float,
    n_iter: int,
    generator: torch.Generator,
    reduction: str = "max",
    tol: float = 1e-3,
    method: str = "auto",
    denoised: torch.Tensor | None = None,
) -> Penalty:
    """``max{‖∂Q(x̃)‖², 1 − ε}`` reduced over the batch by ``max`` (the paper) or ``mean``.

    The top singular vector of ∂Q(x̃) comes from at most ``n_iter`` power iterations run without
    a graph; the penalty is then one differentiable product ``‖∂Q(x̃) u‖²`` at that vector, whose
    weight gradient is the gradient of ‖∂Q(x̃)‖² once the vector has converged. ``denoised``:
    ``J(y)`` when the caller has it already (the training step does).
    """
    if method == "traced":
        raise ValueError("method='traced' has no weight gradient: use 'auto', 'fast' or 'autograd'")
    if reduction not in ("max", "mean"):
        raise ValueError(f"reduction must be 'max' or 'mean', got {reduction!r}")
    check_no_training_batchnorm(model)
    x_tilde = interpolate(model, x_clean, y_noisy, generator, denoised)
    with torch.no_grad():
        lin = linearize(Reflected(model), x_tilde, method)  # one linearization serves both steps
    power = power_iteration(lin, x_tilde, max_iter=n_iter, tol=tol, generator=generator)
    with torch.enable_grad():
        qu = lin.jvp(power.vector)
        sigma2 = qu.flatten(1).square().sum(1)
        per_sample = torch.clamp(sigma2, min=1 - eps)
        value = per_sample.max() if reduction == "max" else per_sample.mean()
    return Penalty(value=value, sigma2=sigma2.detach(), iterations=power.iterations)
