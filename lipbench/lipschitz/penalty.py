"""The firm-nonexpansiveness penalty of PnP-MMO: λ · max{‖∂Q(x̃)‖², 1 − ε}, Q = 2J − Id.

The penalty needs ‖∂Q(x̃)‖² at the worst sample of the batch, and an underestimate lets the true
value sit above the hinge 1 − ε: a plain 10-step power iteration on a constrained DnCNN gives
0.94× the converged max (measured, benchmarks/test_penalty_bias.py). So the estimate screens the
batch with a few Lanczos steps, then refines the few samples it ranks highest by warm-started
Lanczos to a tolerance, and takes the gradient at the refined vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lipbench.lipschitz.lanczos import lanczos
from lipbench.lipschitz.linearize import Linearization, Reflected, linearize
from lipbench.lipschitz.solver import SpectralNorm, check_no_training_batchnorm
from lipbench.lipschitz.spectral import SOLVERS


@dataclass(frozen=True)
class Penalty:
    """``value``: the differentiable penalty (before λ); ``sigma2``: ‖∂Q(x̃_b)‖² per sample (detached);
    ``iterations``: Jacobian products of the screen plus the refinement; ``refine_steps``: the latter."""

    value: torch.Tensor
    sigma2: torch.Tensor
    iterations: int
    refine_steps: int = 0


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


def _estimator(solver: str):
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {tuple(SOLVERS)}, got {solver!r}")
    return SOLVERS[solver]


def top_singular(
    model: nn.Module,
    x: torch.Tensor,
    *,
    n_iter: int,
    tol: float,
    generator: torch.Generator,
    solver: str = "lanczos",
    refine: int = 0,
    refine_iters: int = 100,
    refine_tol: float = 1e-3,
    method: str = "auto",
    lin: Linearization | None = None,
) -> tuple[SpectralNorm, int]:
    """Top singular vector of ∂Q(x_b), Q = 2J − Id, for every sample: a screen of the whole batch
    (``n_iter`` steps of ``solver`` to ``tol``), then ``refine_iters`` Lanczos steps to ``refine_tol``
    on the ``refine`` samples the screen ranks highest, started from their screened vectors.
    Runs without a graph; returns the estimate and the refinement's step count."""
    with torch.no_grad():
        if lin is None:
            lin = linearize(Reflected(model), x, method)
        screen = _estimator(solver)(lin, x, max_iter=n_iter, tol=tol, generator=generator)
        k = min(refine, x.shape[0])
        if k == 0:
            return screen, 0
        worst = torch.topk(screen.sigma, k).indices
        sub = x[worst]
        refined = lanczos(
            linearize(Reflected(model), sub, method), sub, max_iter=refine_iters, tol=refine_tol,
            start=screen.vector[worst],
        )  # fmt: skip
        better = refined.sigma >= screen.sigma[worst]  # a restart never loses ground, but rounding might
        keep = worst[better]
        sigma, vector = screen.sigma.clone(), screen.vector.clone()
        sigma[keep], vector[keep] = refined.sigma[better], refined.vector[better]
        converged = screen.converged.clone()
        converged[worst] = refined.converged
        steps = screen.steps.clone()
        steps[worst] = screen.steps[worst] + refined.steps
    estimate = SpectralNorm(sigma, vector, screen.iterations + refined.iterations, converged, steps)
    return estimate, refined.iterations


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
    solver: str = "lanczos",
    refine: int = 0,
    refine_iters: int = 100,
    refine_tol: float = 1e-3,
    points: torch.Tensor | None = None,
) -> Penalty:
    """``max{‖∂Q(x̃)‖², 1 − ε}`` reduced over the batch by ``max`` (the paper) or ``mean``; at
    ``points`` instead of x̃ when given (``x_clean`` and ``y_noisy`` are then unused).

    The top singular vector of ∂Q(x̃) comes from :func:`top_singular` (``n_iter`` screening steps
    of ``solver`` on the batch, then Lanczos to ``refine_tol`` on the ``refine`` worst samples),
    run without a graph; the penalty is then one differentiable product ``‖∂Q(x̃) u‖²`` at that
    vector, whose weight gradient is the gradient of ‖∂Q(x̃)‖² once the vector has converged.
    ``sigma2`` is that Rayleigh quotient, a lower bound of ‖∂Q(x̃)‖² (tests/test_penalty.py and
    benchmarks/test_penalty_bias.py measure by how much). ``denoised``: ``J(y)`` when the caller
    has it already (the training step does).
    """
    if method == "traced":
        raise ValueError("method='traced' has no weight gradient: use 'auto', 'fast' or 'autograd'")
    if reduction not in ("max", "mean"):
        raise ValueError(f"reduction must be 'max' or 'mean', got {reduction!r}")
    check_no_training_batchnorm(model)
    x_tilde = interpolate(model, x_clean, y_noisy, generator, denoised) if points is None else points.detach()
    with torch.no_grad():
        lin = linearize(Reflected(model), x_tilde, method)  # one linearization serves both steps
    estimate, refine_steps = top_singular(
        model, x_tilde, n_iter=n_iter, tol=tol, generator=generator, solver=solver, refine=refine,
        refine_iters=refine_iters, refine_tol=refine_tol, method=method, lin=lin,
    )  # fmt: skip
    with torch.enable_grad():
        qu = lin.jvp(estimate.vector)
        sigma2 = qu.flatten(1).square().sum(1)
        per_sample = torch.clamp(sigma2, min=1 - eps)
        value = per_sample.max() if reduction == "max" else per_sample.mean()
    return Penalty(value=value, sigma2=sigma2.detach(), iterations=estimate.iterations, refine_steps=refine_steps)
