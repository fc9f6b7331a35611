"""Per-sample ‖∂f(x_b)‖₂ by the Lanczos method on JᵀJ, with full reorthogonalisation.

Conv nets have clustered top singular values, where power iteration creeps: after k products
its error falls like (σ₂/σ₁)^{2k}, Lanczos' like a Chebyshev polynomial's, roughly
exp(−4k·√gap) instead of exp(−2k·gap) for a relative gap ``gap``. Each step costs one ``J u`` and
one ``Jᵀ w``, as a power step does, plus a reorthogonalisation against the basis kept so far
(``steps × batch × pixels`` numbers: cheap for training patches and a few hundred steps; for
large images prefer restarts, that is, several calls with ``start`` set to the last vector).

The estimate is a Ritz value of JᵀJ: by Cauchy interlacing it never exceeds σ₁² in exact
arithmetic, so ``sigma`` is a lower bound (up to float rounding), like power iteration's.
A sample stops when the residual of its top Ritz pair, ρ = β_k |s_k|, is below
``2·tol·θ``: an eigenvalue of JᵀJ then lies within ρ of θ, so σ is within about ``tol`` of a
singular value. Of the top one, unless the start vector is nearly orthogonal to its vector: then
a lower singular value can converge first (measured on small random DnCNNs: 1 sample in 48 was
0.4 % low at ``tol=1e-4``). Power iteration shares that failure mode; a refinement started from a
screened vector rarely meets it. (A gap-based bound ρ²/δ stopped too early on clustered spectra, so it is not used.)
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from lipbench.lipschitz.linearize import Linearization
from lipbench.lipschitz.solver import LipschitzError, SpectralNorm, start_vector


def _dots(basis: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``Vᵀ w`` per sample: ``basis`` is ``B × k × n``, ``w`` is ``B × n``; returns ``B × k``."""
    return torch.einsum("bkn,bn->bk", basis, w)


def to_host(t: torch.Tensor) -> np.ndarray:
    """The one device → host read of a Lanczos step (α and β of every sample: the convergence test
    runs on the host). A GPU synchronises here once per step, as power iteration does from its third."""
    return t.double().cpu().numpy()


def _top_ritz(alphas: np.ndarray, betas: np.ndarray) -> tuple[float, np.ndarray]:
    """Largest eigenvalue of the symmetric tridiagonal ``T`` (diagonal ``alphas``, off-diagonal
    ``betas``) and its unit eigenvector: O(k) with LAPACK's bisection and inverse iteration."""
    k = len(alphas)
    if k == 1:
        return float(alphas[0]), np.ones(1)
    values, vectors = eigh_tridiagonal(alphas, betas, select="i", select_range=(k - 1, k - 1))
    return float(values[0]), vectors[:, 0]


def lanczos(
    lin: Linearization,
    x: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
    generator: torch.Generator | None = None,
    start: torch.Tensor | None = None,
) -> SpectralNorm:
    """Top singular value and right vector of the linearization ``lin`` at ``x``, per sample.

    ``start``: start vectors (``x``'s shape, any norm), e.g. a previous estimate to refine; else
    Gaussian vectors from ``generator``. Stops after ``max_iter`` steps or when every sample has
    met ``tol`` (see the module docstring); ``steps[b]`` is the step at which sample ``b`` did.
    """
    if max_iter < 1:
        raise LipschitzError(f"max_iter must be >= 1, got {max_iter}")
    batch = x.shape[0]
    tiny = torch.finfo(x.dtype).tiny
    with torch.no_grad():
        v = start_vector(x, generator) if start is None else start.detach().to(x.dtype)
        v = v.flatten(1)
        v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp_min(tiny)
        basis = v.new_empty(batch, min(max_iter, 16), v.shape[1])  # B × capacity × n, grown by doubling
        basis[:, 0] = v
        alphas = np.zeros((batch, max_iter))
        betas = np.zeros((batch, max_iter))
        theta = np.zeros(batch)
        steps = np.zeros(batch, dtype=np.int64)
        ritz = [np.zeros(0)] * batch
        active = np.ones(batch, dtype=bool)
        for k in range(1, max_iter + 1):
            w = lin.vjp(lin.jvp(v.view_as(x))).flatten(1)
            kept = basis[:, :k]
            coefficients = _dots(kept, w)
            w = w - torch.einsum("bkn,bk->bn", kept, coefficients)
            w = w - torch.einsum("bkn,bk->bn", kept, _dots(kept, w))  # twice is enough (CGS2)
            beta = torch.linalg.vector_norm(w, dim=1)
            alphas[:, k - 1], betas[:, k - 1] = to_host(torch.stack([coefficients[:, -1], beta]))
            for b in np.flatnonzero(active):
                if not (np.isfinite(alphas[b, :k]).all() and np.isfinite(betas[b, :k]).all()):
                    theta[b], ritz[b], active[b] = np.nan, np.full(k, np.nan), False  # NaN out, as power iteration
                    continue
                theta[b], ritz[b] = _top_ritz(alphas[b, :k], betas[b, : k - 1])
                steps[b] = k
                if betas[b, k - 1] * abs(ritz[b][-1]) <= 2 * tol * abs(theta[b]):  # the residual ‖M u − θ u‖
                    active[b] = False
            if not active.any() or k == max_iter:
                break
            # an exhausted Krylov space (β ≈ 0: that sample has converged exactly) continues with zeros
            exhausted = beta <= 1e3 * torch.finfo(w.dtype).eps * torch.as_tensor(theta, dtype=w.dtype, device=w.device)
            v = torch.where(exhausted[:, None], torch.zeros_like(w), w / beta.clamp_min(tiny)[:, None])
            if k == basis.shape[1]:
                basis = torch.cat([basis, torch.empty_like(basis[:, : min(k, max_iter - k)])], 1)
            basis[:, k] = v
        vectors = torch.stack(
            [basis[b, : len(ritz[b])].T @ torch.as_tensor(ritz[b], dtype=basis.dtype, device=basis.device)
             for b in range(batch)]
        )  # fmt: skip
        u = vectors / torch.linalg.vector_norm(vectors, dim=1, keepdim=True).clamp_min(tiny)
    return SpectralNorm(
        sigma=torch.as_tensor(np.sqrt(np.maximum(theta, 0)), dtype=x.dtype, device=x.device),
        vector=u.view_as(x),
        iterations=k,
        converged=torch.as_tensor(~active & np.isfinite(theta), device=x.device),
        steps=torch.as_tensor(steps, device=x.device),
    )
