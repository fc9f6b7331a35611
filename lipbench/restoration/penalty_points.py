"""Where the firm-nonexpansiveness penalty is evaluated in training (``lipbench train --penalty-points``).

The papers evaluate ‖∂Q‖² at ``x̃ = τ J(x + σ n) + (1 − τ) x`` only (``tilde``), between clean and
denoised patches. PnP applies J elsewhere: to blurred observations and to gradient steps from
them. The PnP-like kinds draw those from training patches, with random blur kernels that none of the
test kernels (Levin's recorded motions, the Gaussian of σ = 1.6) belongs to:

* ``blurred``: ``y = A x + s n``, ``A`` a random kernel (:func:`training_kernel`), ``s ~ U[0, S]``;
* ``gradient``: a PnP-PGD data step ``z = u − γ Aᵀ(A u − y)`` from ``u = τ y + (1 − τ) x`` (between
  the start, ``x_0 = y``, and the solution), ``γ ~ U[1, 1.99]`` (``‖AᵀA‖ = 1``), ``τ ~ U[0, 1]``;
* ``adversarial``: persistent points that climb ‖∂Q‖² over [0, 1]ⁿ, one step of the evaluation's
  adversarial search (:mod:`lipbench.lipschitz.search`) per training step, from training patches
  (:func:`adversarial_step`; the caller keeps them from step to step).

Sample ``b`` of a batch gets the kind ``kinds[b % len(kinds)]``. Every draw comes from the training's
CPU generator, so a run stays bit-identical on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from lipbench.lipschitz.search import ascend, reflected_lower_bound, smooth_surrogate
from lipbench.lipschitz.solver import start_vector
from lipbench.restoration.physics import Blur

KINDS = ("tilde", "blurred", "gradient", "adversarial")
SEARCH_STEP, SEARCH_BETA, POWER_STEPS = 0.01, 50.0, 3  # as lipbench lipschitz's search, one step at a time
KERNEL_SIZE = 15
MAX_NOISE = 0.02  # S: the tables' measurement noise (0.01, 0.008) is inside


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def training_kernel(generator: torch.Generator, size: int = KERNEL_SIZE) -> torch.Tensor:
    """A random normalised ``size × size`` blur: half the draws an anisotropic Gaussian (standard
    deviations ~ U[0.3, 2.5] px, random angle), half a straight motion blur (length ~ U[3, size − 2]
    px, random angle, rendered with bilinear weights)."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    angle = _uniform(generator, 0, math.pi)
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * xx + s * yy, -s * xx + c * yy
    if _uniform(generator) < 0.5:
        su, sv = _uniform(generator, 0.3, 2.5), _uniform(generator, 0.3, 2.5)
        kernel = torch.exp(-(u**2) / (2 * su**2) - v**2 / (2 * sv**2))
    else:
        length = _uniform(generator, 3, size - 2)
        kernel = (1 - v.abs()).clamp_min(0) * (u.abs() <= length / 2)
    return (kernel / kernel.sum()).float()


def pnp_like_points(
    kind: str, x: torch.Tensor, generator: torch.Generator, max_noise: float = MAX_NOISE
) -> torch.Tensor:
    """``blurred`` or ``gradient`` points (module docstring) from the clean patches ``x`` (B×C×H×W)."""
    if kind not in ("blurred", "gradient"):
        raise ValueError(f"kind must be blurred or gradient, got {kind!r}")
    batch = x.shape[0]
    A = Blur([training_kernel(generator) for _ in range(batch)])
    levels = torch.tensor([_uniform(generator, 0, max_noise) for _ in range(batch)], dtype=x.dtype)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) * levels.view(-1, 1, 1, 1)
    with torch.no_grad():
        y = A(x) + noise.to(x.device)
        if kind == "blurred":
            return y
        tau = torch.rand(batch, generator=generator, dtype=x.dtype).to(x.device).view(-1, 1, 1, 1)
        gamma = torch.tensor([_uniform(generator, 1.0, 1.99) for _ in range(batch)], dtype=x.dtype)
        return A.gradient_step(y, gamma)(tau * y + (1 - tau) * x)


def adversarial_step(model: nn.Module, particles: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The ``particles`` one search step further (a smooth surrogate of the present ``model``; left
    vectors from ``POWER_STEPS`` power steps on ``model`` started from ``generator``), in [0, 1]ⁿ."""
    surrogate, _ = smooth_surrogate(model, SEARCH_BETA)
    w, _ = reflected_lower_bound(model, particles, start_vector(particles, generator), POWER_STEPS)
    x, _, _ = ascend(model, surrogate, particles, w, step=SEARCH_STEP, power_steps=0)
    return x.detach()


def penalty_points(
    kinds: Sequence[str],
    x: torch.Tensor,
    tilde: torch.Tensor | None,
    generator: torch.Generator,
    adversarial: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The batch of points: sample ``b`` of kind ``kinds[b % len(kinds)]``, ``tilde`` supplying the
    ``x̃`` samples (None when ``tilde`` is not among ``kinds``) and ``adversarial`` the adversarial
    ones (given that kind's clean patches, it returns the caller's persistent particles, moved on)."""
    unknown = sorted(set(kinds) - set(KINDS))
    if not kinds or unknown:
        raise ValueError(f"penalty points must be among {KINDS}, got {list(kinds)}")
    out = torch.empty_like(x)
    for n, kind in enumerate(kinds):
        index = torch.arange(n, x.shape[0], len(kinds), device=x.device)
        if len(index) == 0:
            continue
        if kind == "tilde":
            if tilde is None:
                raise ValueError("the tilde points need x̃")
            out[index] = tilde[index]
        elif kind == "adversarial":
            if adversarial is None:
                raise ValueError("the adversarial points need the caller's particles")
            out[index] = adversarial(x[index])
        else:
            out[index] = pnp_like_points(kind, x[index], generator)
    return out
