"""Image quality metrics with the papers' conventions: data range 1 and a 6-pixel border crop."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

BORDER = 6  # pixels cropped on each side before PSNR and SSIM, as in the papers' test code
SSIM_MIN_SIDE = 11  # the Gaussian window (σ = 1.5, truncated at 3.5σ)


def _crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    if crop < 0 or 2 * crop >= min(x.shape[-2:]):
        raise ValueError(f"crop={crop} leaves nothing of a {tuple(x.shape[-2:])} image")
    return x[..., crop : x.shape[-2] - crop, crop : x.shape[-1] - crop] if crop else x


def _batched(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != ref.shape:
        raise ValueError(f"image and reference shapes differ: {tuple(x.shape)} vs {tuple(ref.shape)}")
    if x.ndim not in (3, 4):
        raise ValueError(f"expected C×H×W or B×C×H×W images, got shape {tuple(x.shape)}")
    return (x[None], ref[None]) if x.ndim == 3 else (x, ref)


def psnr(x: torch.Tensor, ref: torch.Tensor, crop: int = BORDER, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image (shape ``B``; 0-d for one ``C×H×W`` image), computed in float64."""
    xb, rb = _batched(x, ref)
    diff = _crop(xb, crop).double() - _crop(rb, crop).double()
    mse = diff.square().flatten(1).mean(1)
    out = 10 * torch.log10(data_range**2 / mse)
    return out[0] if x.ndim == 3 else out


def ssim(x: torch.Tensor, ref: torch.Tensor, crop: int = BORDER, data_range: float = 1.0) -> torch.Tensor:
    """SSIM per image via :func:`skimage.metrics.structural_similarity` (Gaussian weights, as the
    papers' test code); shape ``B``, or 0-d for one ``C×H×W`` image."""
    xb, rb = _batched(x, ref)
    if min(xb.shape[-2:]) - 2 * crop < SSIM_MIN_SIDE:
        raise ValueError(f"SSIM needs images of at least {SSIM_MIN_SIDE}×{SSIM_MIN_SIDE} after the {crop}-pixel crop")
    xs = _crop(xb, crop).detach().cpu().double().numpy()
    rs = _crop(rb, crop).detach().cpu().double().numpy()
    values = [
        structural_similarity(a, b, data_range=data_range, gaussian_weights=True, channel_axis=0)
        for a, b in zip(xs, rs, strict=True)
    ]
    out = torch.from_numpy(np.asarray(values, dtype=np.float64))
    return out[0] if x.ndim == 3 else out
