"""Plug-and-play proximal gradient descent: ``x_{k+1} = J(x_k − γ Aᵀ(A x_k − y))``.

The loop keeps its records on the device and copies them to the host once at the end, so a GPU
run has no host synchronisation per iteration (unless Lipschitz estimates are requested).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass

import pandas as pd
import torch

from lipbench.lipschitz import spectral_norm
from lipbench.plumbing.errors import LipbenchError
from lipbench.restoration.metrics import BORDER, psnr
from lipbench.restoration.physics import Blur

Denoiser = Callable[[torch.Tensor], torch.Tensor]
GAMMA_UNITS = ("absolute", "lipschitz")
CLAMPS = ("both", "output", "none")  # clip J's input and output, the iterate only, or nothing


@dataclass(frozen=True)
class PnPResult:
    """Final iterates ``x`` (``B×C×H×W``) and the records, one row per sample × recorded iteration:
    ``sample``, ``iteration``, ``c`` = ‖x_k − x_{k−1}‖ / ‖x_0‖, ``psnr`` (if ``x_true``), ``lip_J``
    (‖∂J‖ at the denoiser's input, where requested); ``gamma``: the step size of each sample (float64);
    ``inputs``: for each ``k`` of ``keep_inputs``, the gradient step from ``x_k`` (``x_0`` the start),
    ``z_k = x_k − γ Aᵀ(A x_k − y)``, which is where PnP applies ``J`` next."""

    x: torch.Tensor
    records: pd.DataFrame
    gamma: torch.Tensor
    inputs: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)


def step_sizes(A: Blur, shape: tuple[int, int], gamma: float, unit: str = "absolute") -> torch.Tensor:
    """The step γ of each of ``A``'s kernels on an ``H×W`` grid, float64: ``gamma`` itself
    (``unit="absolute"``, paper 1's γ = 1.99), or ``gamma / ‖AᵀA‖`` computed per kernel
    (``"lipschitz"``: ``gamma`` in units of ``1/L``, ``L = ‖AᵀA‖`` the Lipschitz constant of the data
    term's gradient; paper 2's γ = 1/‖AᵀA‖ is ``gamma=1``)."""
    if unit == "absolute":
        return torch.full((len(A.kernels),), float(gamma), dtype=torch.float64)
    if unit != "lipschitz":
        raise ValueError(f"gamma unit must be one of {GAMMA_UNITS}, got {unit!r}")
    norms = A.norm_squared(shape)
    if not (norms > 0).all():
        raise ValueError(f"‖AᵀA‖ = 0 for a kernel on a {shape[0]}×{shape[1]} grid: no step relative to it")
    return gamma / norms


def averaged_constant(*alphas: float) -> float:
    """The averagedness constant of a composition of operators that are ``alphas``-averaged
    (Combettes & Yamada 2015: two give (a + b − 2ab)/(1 − ab), applied in turn). PnP-PGD's step
    C∘J∘C∘G with J and the clamps C firmly nonexpansive (1/2) and G = Id − γ∇f (γL/2) is
    ``averaged_constant(0.5, 0.5, 0.5, γL/2)``: averaged, so it converges when it has a fixed point."""
    if not alphas or any(not 0 < a < 1 for a in alphas):
        raise ValueError(f"averagedness constants lie in (0, 1), got {alphas}")
    out = alphas[0]
    for a in alphas[1:]:
        out = (out + a - 2 * out * a) / (1 - out * a)
    return out


class StepSizeError(LipbenchError):
    """A PnP-PGD step size beyond the convergence range ``γ < 2/‖AᵀA‖``."""


def check_step_sizes(A: Blur, shape: tuple[int, int], steps: torch.Tensor) -> None:
    """Raise :class:`StepSizeError` unless ``γ ‖AᵀA‖ < 2`` for each kernel of ``A`` (its step in ``steps``)."""
    gammas = steps.expand(len(A.kernels)).tolist()  # host values: no device read
    products = [g * n for g, n in zip(gammas, A.norm_squared(shape).tolist(), strict=True)]
    worst = max(range(len(products)), key=products.__getitem__)
    if products[worst] >= 2:
        raise StepSizeError(
            f"step size γ = {gammas[worst]:g} gives γ‖AᵀA‖ = {products[worst]:.4g} for "
            f"{A.names[worst]} on a {shape[0]}×{shape[1]} grid: PnP-PGD converges "
            "only for γ < 2/‖AᵀA‖ (2 for a normalised blur); lower --gamma, or pass --allow-large-step to study "
            "divergence"
        )


def _norms(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


def pnp_pgd(
    denoiser: Denoiser,
    A: Blur,
    y: torch.Tensor,
    *,
    gamma: float,
    iters: int,
    gamma_unit: str = "absolute",
    x0: str | torch.Tensor = "y",
    x_true: torch.Tensor | None = None,
    clamp: bool = True,
    clamp_input: bool = False,
    record_every: int = 1,
    crop: int = BORDER,
    lipschitz_every: int = 0,
    lipschitz_iters: int = 50,
    lipschitz_tol: float = 1e-3,
    lipschitz_of: Denoiser | None = None,
    generator: torch.Generator | None = None,
    allow_large_step: bool = False,
    keep_inputs: Collection[int] = (),
) -> PnPResult:
    """Run ``iters`` PnP-PGD iterations on the batch ``y`` (sample ``b`` with ``A``'s kernel ``b``).

    The step is ``gamma``, or with ``gamma_unit="lipschitz"`` ``gamma / ‖AᵀA‖`` of each sample's
    kernel on the image grid (:func:`step_sizes`). ``x0``: ``"y"``, ``"adjoint"`` (``Aᵀ y``) or a
    tensor. ``clamp`` clips every iterate to [0, 1] (after ``J``); ``clamp_input`` also clips
    ``J``'s input. Records every ``record_every``-th iteration (and the last); ``lipschitz_every > 0``
    adds ‖∂J‖ at ``J``'s input every that many iterations (power iteration, ``lipschitz_iters`` /
    ``lipschitz_tol``, start vectors from ``generator``) of ``lipschitz_of`` (default: ``denoiser``;
    a random-mode equivariant denoiser has no fixed Jacobian, so pass the denoiser it wraps). An
    equivariant ``denoiser`` in random mode draws a new ``g`` at every call, that is, at every iteration.
    ``keep_inputs``: iterations ``k`` (0 to ``iters``) whose gradient step ``z_k`` the result keeps.

    Refused with a :class:`StepSizeError`: ``γ ‖AᵀA‖ >= 2`` for some kernel (beyond PnP-PGD's
    convergence range; ``allow_large_step`` runs it anyway). A non-finite ``y`` raises
    :class:`LipbenchError` (one NaN pixel would turn every iterate into NaN).
    """
    if iters < 1 or record_every < 1:
        raise ValueError(f"iters and record_every must be >= 1, got {iters}, {record_every}")
    if any(not 0 <= k <= iters for k in keep_inputs):
        raise ValueError(f"keep_inputs must lie between 0 and iters = {iters}, got {sorted(keep_inputs)}")
    if not torch.isfinite(y).all():  # the loop's one read from the device
        bad = torch.isfinite(y.flatten(1)).all(1).logical_not().nonzero().flatten().tolist()
        raise LipbenchError(
            f"the observation y holds NaN or infinite values (samples {bad}): PnP needs finite data; "
            "check the images and the noise level"
        )
    if isinstance(x0, torch.Tensor):
        x = x0.clone()
    elif x0 == "y":
        x = y.clone()
    elif x0 == "adjoint":
        x = A.adjoint(y)
    else:
        raise ValueError(f"x0 must be 'y', 'adjoint' or a tensor, got {x0!r}")
    steps = step_sizes(A, tuple(y.shape[-2:]), gamma, gamma_unit)
    if not allow_large_step:
        check_step_sizes(A, tuple(y.shape[-2:]), steps)
    # x − γ Aᵀ(A x − y), two FFTs per iteration; a plain number when γ is absolute
    data_step = A.gradient_step(y, gamma if gamma_unit == "absolute" else steps)
    steps = steps.expand(y.shape[0])
    recorded = [k for k in range(1, iters + 1) if k % record_every == 0 or k == iters]
    lip_at = {k for k in range(1, iters + 1) if lipschitz_every and k % lipschitz_every == 0}
    batch = y.shape[0]
    c = torch.empty(len(recorded), batch, dtype=torch.float64, device=y.device)
    quality = torch.empty_like(c) if x_true is not None else None
    lips: dict[int, torch.Tensor] = {}
    inputs: dict[int, torch.Tensor] = {}
    x0_norm = _norms(x).double()
    row = 0
    with torch.no_grad():
        for k in range(1, iters + 1):
            z = data_step(x)
            if k - 1 in keep_inputs:
                inputs[k - 1] = z.clone()
            if clamp_input:
                z = z.clamp(0, 1)
            if k in lip_at:
                lips[k] = spectral_norm(
                    lipschitz_of or denoiser, z, max_iter=lipschitz_iters, tol=lipschitz_tol, generator=generator
                ).sigma
            new = denoiser(z)
            if clamp:
                new = new.clamp(0, 1)
            if row < len(recorded) and recorded[row] == k:
                c[row] = _norms(new - x).double() / x0_norm
                if quality is not None:
                    quality[row] = psnr(new, x_true, crop=crop)
                row += 1
            x = new
        if iters in keep_inputs:
            inputs[iters] = data_step(x)
    records = pd.DataFrame(
        {
            "sample": [b for _ in recorded for b in range(batch)],
            "iteration": [k for k in recorded for _ in range(batch)],
            "c": c.flatten().cpu().numpy(),
        }
    )
    if quality is not None:
        records["psnr"] = quality.flatten().cpu().numpy()
    if lips:
        table = {(k, b): v for k, sig in lips.items() for b, v in enumerate(sig.double().cpu().tolist())}
        records["lip_J"] = [
            table.get((k, b), float("nan")) for k, b in zip(records.iteration, records["sample"], strict=True)
        ]
    return PnPResult(x=x, records=records, gamma=steps.clone(), inputs=inputs)
