"""Per-sample spectral norm of a Jacobian, ‖∂f(x_b)‖₂, by a solver chosen by name."""

from __future__ import annotations

import torch

from lipbench.lipschitz.lanczos import lanczos
from lipbench.lipschitz.linearize import Function, linearize
from lipbench.lipschitz.power import power_iteration
from lipbench.lipschitz.solver import LipschitzError, SpectralNorm, check_no_training_batchnorm

SOLVERS = {"lanczos": lanczos, "power": power_iteration}


def spectral_norm(
    f: Function,
    x: torch.Tensor,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    generator: torch.Generator | None = None,
    method: str = "auto",
    solver: str = "power",
) -> SpectralNorm:
    """Estimate ‖∂f(x_b)‖₂ for every sample of the batch ``x`` by power iteration on JᵀJ
    (``solver="lanczos"``: by :func:`lipbench.lipschitz.lanczos.lanczos`, fewer products for the
    same tolerance, memory growing with the steps).

    A sample stops (its σ and vector freeze) once σ has settled to the relative tolerance ``tol``
    (its last change and the remaining change extrapolated from the last two, see ``_settled``);
    the loop ends when every sample has stopped or after ``max_iter`` iterations. ``method``: ``"fast"``
    (conv + ReLU/LeakyReLU stacks), ``"autograd"`` (any ``f``), ``"traced"`` (any traceable ``f``,
    cheaper per iteration after a one-off tracing cost) or ``"auto"`` (fast, else autograd).
    Runs without building a graph and never modifies ``x``.
    """
    if solver not in SOLVERS:
        raise LipschitzError(f"solver must be one of {tuple(SOLVERS)}, got {solver!r}")
    check_no_training_batchnorm(f)
    with torch.no_grad():
        return SOLVERS[solver](linearize(f, x.detach(), method), x, max_iter=max_iter, tol=tol, generator=generator)
