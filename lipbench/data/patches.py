"""Reproducible training patches: random crops with random rot90/flip, from an explicit generator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from lipbench.plumbing.errors import DataError


def dihedral(x: torch.Tensor, element: int) -> torch.Tensor:
    """Apply element ``0 <= element < 8`` of D4: ``rot90`` by ``element % 4``, then a
    left-right flip if ``element >= 4``. Acts on the last two dimensions."""
    out = torch.rot90(x, element % 4, dims=(-2, -1))
    return out.flip(-1) if element >= 4 else out


class PatchSampler:
    """Batches of ``batch_size`` random ``patch_size``² crops of ``images``.

    Each patch picks an image uniformly, a crop position uniformly, and (with ``augment``)
    one of the 8 rot90/flip elements uniformly. All draws come from ``generator`` (a CPU
    ``torch.Generator``), so the same seed gives bit-identical batches; no global RNG is used.
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        patch_size: int,
        batch_size: int,
        *,
        generator: torch.Generator,
        augment: bool = True,
        pin_memory: bool = False,
    ) -> None:
        if not images:
            raise DataError("PatchSampler needs at least one image")
        if patch_size < 1 or batch_size < 1:
            raise DataError(f"patch_size and batch_size must be positive, got {patch_size}, {batch_size}")
        channels = {img.shape[0] for img in images}
        if len(channels) != 1 or any(img.ndim != 3 for img in images):
            raise DataError("PatchSampler needs C×H×W images that all have the same number of channels")
        small = [i for i, img in enumerate(images) if min(img.shape[-2:]) < patch_size]
        if small:
            raise DataError(f"images {small[:5]} are smaller than patch_size={patch_size}: use a smaller patch size")
        if generator.device.type != "cpu":
            raise DataError("PatchSampler needs a CPU torch.Generator (for device-independent draws)")
        self.images = list(images)
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.generator = generator
        self.augment = augment
        # Pinned host memory only exists with CUDA; elsewhere the flag is a no-op.
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self._sizes = torch.tensor([img.shape[-2:] for img in images], dtype=torch.float64)

    def sample(self) -> torch.Tensor:
        """Draw one batch, shape ``batch_size × C × patch_size × patch_size``."""
        n, p, g = self.batch_size, self.patch_size, self.generator
        which = torch.randint(len(self.images), (n,), generator=g)
        span = self._sizes[which] - p + 1  # number of valid top-left positions per axis
        corners = (torch.rand(n, 2, generator=g, dtype=torch.float64) * span).floor().long()
        elements = torch.randint(8, (n,), generator=g) if self.augment else torch.zeros(n, dtype=torch.long)
        batch = torch.empty(n, self.images[0].shape[0], p, p, pin_memory=self.pin_memory)
        draws = zip(which.tolist(), corners.tolist(), elements.tolist(), strict=True)
        for k, (i, (top, left), e) in enumerate(draws):
            batch[k] = dihedral(self.images[i][:, top : top + p, left : left + p], e)
        return batch

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            yield self.sample()
