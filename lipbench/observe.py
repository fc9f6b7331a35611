"""Degraded observations ``y = A x + σ n`` with noise seeded by (image, kernel, σ).

Every method that restores the same image sees the same ``y``, whatever order it runs in.
"""

from __future__ import annotations

import torch

from lipbench.errors import LipbenchError
from lipbench.physics import Blur, gaussian_noise
from lipbench.seeding import derive_seed


def observation_seed(image_id: str, kernel_name: str, sigma: float) -> int:
    """The noise seed of one observation, derived from its coordinates."""
    return derive_seed("observation", str(image_id), str(kernel_name), float(sigma))


def observe(x: torch.Tensor, blur: Blur, sigma: float, image_id: str, kernel_name: str) -> torch.Tensor:
    """``A x + σ n`` for one ``C×H×W`` (or ``1×C×H×W``) image, noise from :func:`observation_seed`."""
    batch = x if x.ndim == 4 else x[None]
    g = torch.Generator().manual_seed(observation_seed(image_id, kernel_name, sigma))
    y = gaussian_noise(blur(batch), sigma, g)
    return y if x.ndim == 4 else y[0]


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size×size`` window of a ``…×H×W`` tensor (odd margins favour the top-left)."""
    h, w = x.shape[-2:]
    if not 1 <= size <= min(h, w):
        raise LipbenchError(f"--crop {size} must lie between 1 and the image's smaller side ({h}×{w} image)")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]
