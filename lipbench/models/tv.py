"""The TV baseline's denoiser: isotropic total variation, its proximal operator (FGP, Beck & Teboulle
2009), and :class:`TVDenoiser`, that prox as a parameter-free denoiser (the baseline's J).

Images are ``B×C×H×W``; each channel of each sample is a separate 2-D image. The discrete gradient
takes forward differences with a Neumann boundary (the difference past the last row/column is 0),
``TV(u) = Σ sqrt(dy² + dx²)`` over pixels and channels, and ``divergence = -gradientᵀ`` exactly.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from lipbench.models.clamping import EvalClamped
from lipbench.models.registry import register

if TYPE_CHECKING:
    from lipbench.lipschitz.bounds import UpperBound

__all__ = ["TVDenoiser", "divergence", "gradient", "tv", "tv_prox"]


def gradient(u: torch.Tensor) -> torch.Tensor:
    """Forward differences of ``u`` (``…×H×W``) as ``…×2×H×W``: index 0 down the rows, 1 along the columns."""
    dy = F.pad(u.diff(dim=-2), (0, 0, 0, 1))
    dx = F.pad(u.diff(dim=-1), (0, 1))
    return torch.stack((dy, dx), dim=-3)


def divergence(p: torch.Tensor) -> torch.Tensor:
    """``-gradientᵀ p`` for ``p`` of shape ``…×2×H×W`` (the last row of ``p[…, 0]`` and column of ``p[…, 1]`` are
    ignored: :func:`gradient` sets them to 0)."""
    return _divergence(p[..., 0, :-1, :], p[..., 1, :, :-1])


def tv(u: torch.Tensor) -> torch.Tensor:
    """Isotropic total variation of each sample of ``u`` (``B×C×H×W``), shape ``(B,)``."""
    if u.ndim != 4:
        raise ValueError(f"u must be a B×C×H×W tensor, got shape {tuple(u.shape)}")
    g = gradient(u)
    return torch.hypot(g[:, :, 0], g[:, :, 1]).sum(dim=(1, 2, 3))


def _weights(weight: float | torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``weight`` as a ``B×1×1×1`` tensor of ``f``'s dtype and device, validated."""
    if isinstance(weight, torch.Tensor):
        if weight.ndim != 1 or weight.shape[0] != f.shape[0]:
            raise ValueError(
                f"weight must be a float or a 1-D tensor of B={f.shape[0]} values, got shape {tuple(weight.shape)}"
            )
        if not weight.is_floating_point() and weight.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"weight must be real, got dtype {weight.dtype}")
        w = weight.to(device=f.device, dtype=f.dtype)
        if not bool(((w >= 0) & torch.isfinite(w)).all()):  # one host read, for tensor weights only
            raise ValueError("weight must be finite and >= 0")
        return w.view(-1, 1, 1, 1)
    if isinstance(weight, bool) or not isinstance(weight, Real):
        raise ValueError(f"weight must be a float or a 1-D tensor, got {type(weight).__name__}")
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight must be finite and >= 0, got {weight}")
    return torch.full((f.shape[0], 1, 1, 1), float(weight), dtype=f.dtype, device=f.device)


def _fgp(f: torch.Tensor, weight: float | torch.Tensor, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FGP on the dual: ``(u, p)`` with ``u = f + w·div p`` and ``|p| ≤ 1`` pixelwise (``p`` as from
    :func:`gradient`). The dual problem is ``min_{|p|≤1} ½‖f + w·div p‖²``, whose gradient ``-w·∇u`` is
    ``8w²``-Lipschitz: the step is ``1/(8w²)``, i.e. ``p ← Π(r + ∇u/(8w))``."""
    if not isinstance(f, torch.Tensor) or f.ndim != 4 or not f.is_floating_point():
        raise ValueError(f"f must be a floating B×C×H×W tensor, got {getattr(f, 'shape', type(f).__name__)}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an int >= 1, got {iters!r}")
    w = _weights(weight, f)
    step = 1 / (8 * torch.where(w > 0, w, torch.ones_like(w)))  # w = 0 gives u = f anyway
    # the dual as its meaningful parts: py (rows, H−1) and px (columns, W−1); fresh buffers each
    # iteration keep autograd and forward-mode AD valid (measured 1.4× faster than stacked fields)
    py, px = f.new_zeros((*f.shape[:2], f.shape[2] - 1, f.shape[3])), f.new_zeros((*f.shape[:3], f.shape[3] - 1))
    ry, rx, t = py, px, 1.0
    for _ in range(iters):
        u = torch.addcmul(f, w, _divergence(ry, rx))
        qy = torch.addcmul(ry, step, u[..., 1:, :] - u[..., :-1, :])
        qx = torch.addcmul(rx, step, u[..., :, 1:] - u[..., :, :-1])
        norm = torch.zeros_like(f)
        norm[..., :-1, :] += qy * qy
        norm[..., :, :-1] += qx * qx
        norm = norm.sqrt().clamp(min=1)
        qy, qx = qy / norm[..., :-1, :], qx / norm[..., :, :-1]
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        beta = 1 + (t - 1) / t_next  # r = q + (t − 1)/t_next · (q − p)
        ry, rx = torch.lerp(py, qy, beta), torch.lerp(px, qx, beta)
        py, px, t = qy, qx, t_next
    p = torch.stack((F.pad(py, (0, 0, 0, 1)), F.pad(px, (0, 1))), dim=-3)
    return torch.addcmul(f, w, _divergence(py, px)), p


def _divergence(py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """:func:`divergence` of the dual's meaningful parts ``py`` (``…×(H−1)×W``) and ``px`` (``…×H×(W−1)``)."""
    div = py.new_zeros((*py.shape[:-2], py.shape[-2] + 1, py.shape[-1]))  # in-place adds: 1.2× faster than pad/diff
    div[..., :-1, :] += py
    div[..., 1:, :] -= py
    div[..., :, :-1] += px
    div[..., :, 1:] -= px
    return div


def tv_prox(f: torch.Tensor, weight: float | torch.Tensor, iters: int = 100) -> torch.Tensor:
    """``argmin_u ½‖u − f‖² + weight·TV(u)`` for each sample of ``f`` (``B×C×H×W``, any float dtype/device).

    ``weight``: a float, or a 1-D tensor of one weight per sample; all >= 0 (0 returns ``f``). Computed by
    ``iters`` iterations of the fast gradient projection (Beck & Teboulle 2009) on the dual, from a zero
    dual: deterministic, and sample ``b``'s result does not depend on the rest of the batch.
    """
    return _fgp(f, weight, iters)[0]


@register("tv")
class TVDenoiser(EvalClamped):
    """The TV proximal operator ``x ↦ tv_prox(x, weight, iters)`` as a parameter-free denoiser.

    The proximal operator of a convex function is firmly nonexpansive (``‖Px − Py‖² ≤ ⟨Px − Py, x − y⟩``),
    hence 1-Lipschitz: a baseline for the Lipschitz-constrained denoisers (up to the truncation at ``iters``).
    ``clamp``: in eval mode the input and output are clamped to [0, 1], as for DnCNN. ``channels``: the
    number of channels ``forward`` accepts (each is denoised separately).
    """

    def __init__(self, weight: float = 0.05, iters: int = 100, clamp: bool = False, channels: int = 1) -> None:
        super().__init__()
        if isinstance(weight, bool) or not isinstance(weight, Real) or not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight must be a finite float >= 0, got {weight!r}")
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
            raise ValueError(f"iters must be an int >= 1, got {iters!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an int >= 1, got {channels!r}")
        self.weight = float(weight)
        self.iters = iters
        self.clamp = clamp
        self.channels = channels

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must be B×{self.channels}×H×W, got shape {tuple(x.shape)}")
        return tv_prox(x, self.weight, self.iters)

    def fne_upper_bound(self, shape: tuple[int, int]) -> UpperBound:
        """None that holds: the exact prox of a convex function is firmly nonexpansive (sup ‖∂Q‖² ≤ 1),
        but this one stops after ``iters`` FGP iterations, and a truncated prox has no such bound (the
        adversarial search finds ‖∂Q‖² well above 1 for it). So ``inf``, saying so."""
        from lipbench.lipschitz.bounds import UpperBound  # on use: importing a model loads no solver

        return UpperBound(math.inf, f"none: {self.iters} FGP iterations, not the exact prox (whose bound is 1)")

    def extra_repr(self) -> str:
        return f"weight={self.weight}, iters={self.iters}, clamp={self.clamp}, channels={self.channels}"
