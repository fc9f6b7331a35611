"""The blur operator A (circular cross-correlation, computed with FFTs) and Gaussian noise."""

from __future__ import annotations

import torch

from lipbench.data.kernels import validate_kernel


class Blur:
    """``A x`` = circular cross-correlation of each channel of ``x`` with a centred kernel.

    ``(A x)[i, j] = Σ_{u,v} k[u, v] · x[(i + u − c) mod H, (j + v − c) mod W]`` with ``c = (s − 1)/2``
    for an ``s×s`` kernel: PnP-MMO's convention (a flipped kernel, circular convolution).
    Acts on ``B×C×H×W`` tensors of any ``H, W``; the kernel's transform is cached per size,
    device and dtype. ``adjoint`` is the exact adjoint (correlation with the flipped kernel).
    """

    def __init__(self, kernel: torch.Tensor, *, name: str = "kernel") -> None:
        self.kernel = validate_kernel(kernel, name)
        self.name = name
        self._spectra: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}

    def spectrum(self, shape: tuple[int, int], device: torch.device | str = "cpu", dtype=torch.float32) -> torch.Tensor:
        """``rfft2`` of the kernel wrapped onto an ``H×W`` grid with its centre at (0, 0)."""
        h, w = shape
        key = (h, w, torch.device(device), dtype)
        if key not in self._spectra:
            s = self.kernel.shape[0]
            c = (s - 1) // 2
            offsets = torch.arange(s) - c
            rows = (offsets % h)[:, None].expand(s, s)
            cols = (offsets % w)[None, :].expand(s, s)
            wrapped = torch.zeros(h, w, dtype=torch.float64)
            wrapped.index_put_((rows, cols), self.kernel.double(), accumulate=True)  # folds kernels > image
            self._spectra[key] = torch.fft.rfft2(wrapped).to(device=device, dtype=_complex(dtype))
        return self._spectra[key]

    def _apply(self, x: torch.Tensor, conjugate: bool) -> torch.Tensor:
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"Blur expects a floating-point B×C×H×W tensor, got {tuple(x.shape)} {x.dtype}")
        spec = self.spectrum(tuple(x.shape[-2:]), x.device, x.dtype)
        spec = spec.conj() if conjugate else spec
        return torch.fft.irfft2(torch.fft.rfft2(x) * spec, s=x.shape[-2:])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``."""
        return self._apply(x, conjugate=True)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᵀ y``."""
        return self._apply(y, conjugate=False)

    def norm(self, shape: tuple[int, int] | None = None) -> float:
        """``‖A‖₂`` on an ``H×W`` grid (default: the kernel's own size) = max |FFT of the kernel|.

        Validated kernels are non-negative and sum to 1, so this is 1 on every grid.
        """
        grid = shape or tuple(self.kernel.shape)
        return self.spectrum(grid, "cpu", torch.float64).abs().max().item()


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``x + σ n`` with ``n ~ N(0, I)`` drawn from ``generator`` on the CPU.

    Drawing on the CPU and moving the noise to ``x.device`` gives the same ``y`` on every device.
    """
    if generator.device.type != "cpu":
        raise ValueError("gaussian_noise needs a CPU torch.Generator so the noise is device-independent")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + sigma * noise.to(x.device)
