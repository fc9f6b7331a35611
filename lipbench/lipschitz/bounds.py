"""Certified upper bounds on sup_x ‖∂Q(x)‖², ``Q = 2J − Id``, from the weights alone.

A denoiser supplies its bound through the hook ``fne_upper_bound(shape) -> UpperBound`` (``shape``:
the image's H×W; a bound may depend on it); :func:`upper_bound` calls it. Convolution norms are
exact for circular convolutions (Sedghi et al., ICLR 2019: the FFT block-diagonalises them) and
bounds for zero-padded ones (:func:`conv_norm_bound`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

_CHUNK_BYTES = 1 << 27  # per chunk of frequencies: keeps a 64×64-channel kernel on a 512×512 grid small


@dataclass(frozen=True)
class UpperBound:
    """``lip2_Q`` ≥ sup_x ‖∂Q(x)‖² (``Q = 2J − Id``); ``how``: one line saying how it was obtained."""

    lip2_Q: float
    how: str


def upper_bound(model: nn.Module, shape: tuple[int, int]) -> UpperBound | None:
    """``model.fne_upper_bound(shape)`` on H×W = ``shape`` images, or None when the model defines no
    such method (no bound known). The hook returns an :class:`UpperBound` valid for that size."""
    hook = getattr(model, "fne_upper_bound", None)
    return hook(tuple(shape)) if callable(hook) else None


def conv_norm_circular(weight: torch.Tensor, shape: tuple[int, int]) -> float:
    """‖·‖₂ of the stride-1 circular convolution with the real ``weight`` (out×in×kh×kw,
    cross-correlation as ``F.conv2d``) on an H×W grid, exact: the max over the grid's frequencies
    of the top singular value of the out×in matrix of kernel DFTs (taps beyond the grid wrap
    around), in float64. Real kernels: frequency ω and −ω give conjugate matrices, so half suffice."""
    if weight.ndim != 4:
        raise ValueError(f"weight must be out×in×kh×kw, got shape {tuple(weight.shape)}")
    h, w = (int(n) for n in shape)
    if h < 1 or w < 1:
        raise ValueError(f"shape must be two positive sizes, got {shape}")
    weight = weight.detach().to(torch.float64)
    out_c, in_c, kh, kw = weight.shape

    def dft(n: int, k: int, rows: int) -> torch.Tensor:
        angle = (torch.outer(torch.arange(rows), torch.arange(k)) % n).to(torch.float64) * (-2 * math.pi / n)
        return torch.polar(torch.ones_like(angle), angle).to(weight.device)

    fh, fw = dft(h, kh, h), dft(w, kw, w // 2 + 1)
    half = torch.einsum("bl,oikl->kboi", fw, weight.to(fh.dtype))  # kh × (w//2+1) × out × in
    chunk = max(1, _CHUNK_BYTES // (16 * fw.shape[0] * out_c * in_c))
    norm = 0.0
    for start in range(0, h, chunk):
        blocks = torch.einsum("ak,kboi->aboi", fh[start : start + chunk], half)
        norm = max(norm, torch.linalg.matrix_norm(blocks, ord=2).max().item())
    return norm


def conv_norm_bound(
    weight: torch.Tensor | nn.Conv2d,
    shape: tuple[int, int],
    padding: tuple[int, int] | None = None,
    *,
    out_scale: torch.Tensor | None = None,
) -> float:
    """An upper bound on ‖·‖₂ of the stride-1 zero-padded convolution ``F.conv2d(x, weight,
    padding=padding)`` on H×W images (``weight`` a kernel, or an ``nn.Conv2d``, whose padding is used),
    its output channels scaled by ``out_scale`` if given (an eval-mode batch-norm folded in).

    It is a restriction of the circular convolution on a grid where nothing wraps around: embed the
    image into zeros on an (H + 2ph)×(W + 2pw) grid, convolve circularly, crop the output; embedding
    and cropping have norm 1, so the circular norm on that grid (:func:`conv_norm_circular`) bounds it.
    An ``nn.Conv2d`` must have stride 1, dilation 1, one group and zero padding (else ValueError).
    """
    if isinstance(weight, nn.Conv2d):
        conv = weight
        if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1:
            raise ValueError(
                "conv_norm_bound handles stride 1, dilation 1 and groups 1 only, got "
                f"stride={conv.stride}, dilation={conv.dilation}, groups={conv.groups}"
            )
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(
                f"conv_norm_bound needs explicit zero padding, got padding={conv.padding!r}, "
                f"padding_mode={conv.padding_mode!r}"
            )
        weight, padding = conv.weight, padding if padding is not None else conv.padding
    if padding is None:
        raise ValueError("padding is required for a bare kernel")
    if out_scale is not None:
        weight = weight.detach() * out_scale.detach().reshape(-1, 1, 1, 1)
    ph, pw = (int(p) for p in padding)
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    return conv_norm_circular(weight, (int(shape[0]) + 2 * ph, int(shape[1]) + 2 * pw))
