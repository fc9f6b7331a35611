"""The forward model: the blur operator A (circular cross-correlation, computed with FFTs), Gaussian
noise, and the observations ``y = A x + σ n`` with noise seeded by (image, kernel, σ), so every method
that restores the same image sees the same ``y``, whatever order it runs in."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from lipbench.data.kernels import validate_kernel
from lipbench.plumbing.errors import KernelError
from lipbench.plumbing.seeding import derive_seed


class Blur:
    """``A x`` = circular cross-correlation of each channel of ``x`` with a centred kernel.

    ``(A x)[i, j] = Σ_{u,v} k[u, v] · x[(i + u − c) mod H, (j + v − c) mod W]`` with ``c = (s − 1)/2``
    for an ``s×s`` kernel: PnP-MMO's convention (a flipped kernel, circular convolution).
    Acts on ``B×C×H×W`` tensors of any ``H, W``; the kernel's transform is cached per size,
    device and dtype. ``adjoint`` is the exact adjoint (correlation with the flipped kernel).

    ``kernel`` may also be a sequence of kernels (any odd sizes): sample ``b`` of the batch is then
    blurred with kernel ``b``, so one batch holds every image × kernel pair of an experiment.

    ``name`` names the kernel (in errors), or each kernel of a batch.

    Kernels are validated as blur kernels (non-negative, summing to 1); ``normalised=False`` accepts
    any finite odd square kernel (another sum, negative entries), whose ``‖AᵀA‖`` is not 1.
    """

    def __init__(
        self,
        kernel: torch.Tensor | Sequence[torch.Tensor],
        *,
        name: str | Sequence[str] = "kernel",
        normalised: bool = True,
    ) -> None:
        self.batched = not isinstance(kernel, torch.Tensor)
        kernels = list(kernel) if self.batched else [kernel]
        if not kernels:
            raise ValueError("Blur needs at least one kernel")
        if isinstance(name, str):
            self.names = [f"{name}[{i}]" for i in range(len(kernels))] if self.batched else [name]
        elif len(name) == len(kernels):
            self.names = list(name)
        else:
            raise ValueError(f"Blur got {len(name)} names for {len(kernels)} kernels")
        self.kernels = [validate_kernel(k, n, normalised=normalised) for k, n in zip(kernels, self.names, strict=True)]
        self._spectra: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def kernel(self) -> torch.Tensor:
        """The kernel of a single-kernel operator."""
        if self.batched:
            raise AttributeError("a batched Blur has .kernels, not .kernel")
        return self.kernels[0]

    @staticmethod
    def _wrapped(kernel: torch.Tensor, h: int, w: int) -> torch.Tensor:
        s = kernel.shape[0]
        offsets = torch.arange(s) - (s - 1) // 2
        rows = (offsets % h)[:, None].expand(s, s)
        cols = (offsets % w)[None, :].expand(s, s)
        wrapped = torch.zeros(h, w, dtype=torch.float64)
        wrapped.index_put_((rows, cols), kernel.double(), accumulate=True)  # folds kernels > image
        return wrapped

    def spectrum(self, shape: tuple[int, int], device: torch.device | str = "cpu", dtype=torch.float32) -> torch.Tensor:
        """``rfft2`` of the kernel(s) wrapped onto an ``H×W`` grid with the centre at (0, 0):
        ``H×(W//2+1)``, or ``K×1×H×(W//2+1)`` for ``K`` batched kernels."""
        h, w = shape
        key = (h, w, torch.device(device), dtype)
        if key not in self._spectra:
            spectra = torch.fft.rfft2(torch.stack([self._wrapped(k, h, w) for k in self.kernels]))
            spectra = spectra[:, None] if self.batched else spectra[0]
            self._spectra[key] = spectra.to(device=device, dtype=_complex(dtype))
        return self._spectra[key]

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"Blur expects a floating-point B×C×H×W tensor, got {tuple(x.shape)} {x.dtype}")
        if self.batched and x.shape[0] != len(self.kernels):
            raise ValueError(
                f"a Blur with {len(self.kernels)} kernels needs a batch of {len(self.kernels)}, got {x.shape[0]}"
            )

    def _apply(self, x: torch.Tensor, conjugate: bool) -> torch.Tensor:
        self._check(x)
        spec = self.spectrum(tuple(x.shape[-2:]), x.device, x.dtype)
        spec = spec.conj() if conjugate else spec
        return torch.fft.irfft2(torch.fft.rfft2(x) * spec, s=x.shape[-2:])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``."""
        return self._apply(x, conjugate=True)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᵀ y``."""
        return self._apply(y, conjugate=False)

    def gradient_step(self, y: torch.Tensor, gamma: float | torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x ↦ x − γ Aᵀ(A x − y)``, the data step of PnP-PGD, in two FFTs per call instead of the
        four of ``adjoint(A(x) − y)``: ``Aᵀ(A x − y) = F⁻¹(|K|² F x − K F y)``, with ``|K|²`` and
        ``K F y`` computed once here. ``gamma``: one step size, or a 1-D tensor of one per sample."""
        self._check(y)
        if isinstance(gamma, torch.Tensor):
            if gamma.ndim != 1 or len(gamma) not in (1, y.shape[0]):
                raise ValueError(
                    f"gamma must be a number or hold 1 or {y.shape[0]} values, got shape {tuple(gamma.shape)}"
                )
            gamma = gamma.to(device=y.device, dtype=y.dtype).reshape(-1, 1, 1, 1)
        spec = self.spectrum(tuple(y.shape[-2:]), y.device, y.dtype)
        gram, aty = spec.abs().square(), torch.fft.rfft2(y) * spec

        def step(x: torch.Tensor) -> torch.Tensor:
            return x - gamma * torch.fft.irfft2(torch.fft.rfft2(x) * gram - aty, s=x.shape[-2:])

        return step

    def norm(self, shape: tuple[int, int] | None = None) -> float:
        """``‖A‖₂`` on an ``H×W`` grid (default: the largest kernel's size) = max |FFT of the kernel|
        (the largest over batched kernels).

        Normalised kernels are non-negative and sum to 1, so this is 1 on every grid.
        """
        size = max(k.shape[0] for k in self.kernels)
        return self.spectrum(shape or (size, size), "cpu", torch.float64).abs().max().item()

    def norm_squared(self, shape: tuple[int, int]) -> torch.Tensor:
        """``‖AᵀA‖₂ = ‖A‖₂²`` of each kernel on an ``H×W`` grid: ``max_ω |K(ω)|²`` over the DFT of the
        kernel wrapped onto the grid, computed in float64. A float64 tensor of ``K`` values (one for a
        single kernel). It is ``L``, the Lipschitz constant of ``x ↦ Aᵀ(A x − y)``; for a normalised
        kernel it is 1 up to the rounding of the stored kernel."""
        spectra = self.spectrum(tuple(shape), "cpu", torch.float64)
        return spectra.abs().square().reshape(len(self.kernels), -1).amax(dim=1)


def check_fits(name: str, kernel: torch.Tensor, shape: tuple[int, ...]) -> None:
    """Refuse a kernel larger than an ``…×H×W`` image: :class:`Blur` would fold it around the image
    (exactly, but an experiment on such a pair is a mistake)."""
    side, (h, w) = kernel.shape[-1], shape[-2:]
    if side > min(h, w):
        raise KernelError(
            f"kernel {name} is {side}×{side}, larger than the {h}×{w} image: the circular blur would wrap it "
            "around; use larger images (a larger --crop) or a smaller kernel"
        )


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


def observation_seed(image_id: str, kernel_name: str, sigma: float) -> int:
    """The noise seed of one observation, derived from its coordinates."""
    return derive_seed("observation", str(image_id), str(kernel_name), float(sigma))


def observe(x: torch.Tensor, blur: Blur, sigma: float, image_id: str, kernel_name: str) -> torch.Tensor:
    """``A x + σ n`` for one ``C×H×W`` (or ``1×C×H×W``) image, noise from :func:`observation_seed`."""
    batch = x if x.ndim == 4 else x[None]
    g = torch.Generator().manual_seed(observation_seed(image_id, kernel_name, sigma))
    y = gaussian_noise(blur(batch), sigma, g)
    return y if x.ndim == 4 else y[0]
