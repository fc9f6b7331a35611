"""The patch sampler: reproducible, generator-only randomness, real crops under D4 transforms."""

from __future__ import annotations

import pytest
import torch

from lipbench.data import PatchSampler, dihedral, load_images
from lipbench.plumbing.errors import DataError


def _coded_images() -> list[torch.Tensor]:
    """Images whose every pixel value is unique, so a patch reveals where it came from."""
    sizes = [(30, 41), (37, 25)]
    out, offset = [], 0
    for h, w in sizes:
        out.append((torch.arange(h * w, dtype=torch.float32) + offset).reshape(1, h, w))
        offset += h * w
    return out


def test_same_seed_same_batches_and_no_global_rng():
    images = _coded_images()
    a = PatchSampler(images, 8, 16, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = [a.sample() for _ in range(3)]
    assert torch.equal(state, torch.random.get_rng_state())
    torch.manual_seed(999)  # the global seed must not matter
    b = PatchSampler(images, 8, 16, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(first, [b.sample() for _ in range(3)], strict=True))
    c = PatchSampler(images, 8, 16, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(first[0], c.sample())
    assert not torch.equal(first[0], first[1])


def test_every_patch_is_a_d4_transform_of_a_real_crop():
    images = _coded_images()
    p = 6
    sampler = PatchSampler(images, p, 400, generator=torch.Generator().manual_seed(0))
    batch = sampler.sample()
    assert batch.shape == (400, 1, p, p)
    seen_elements, seen_images = set(), set()
    for patch in batch:
        # undo each candidate transform; the one that gives a crop of a source image must exist
        found = False
        for e in range(8):
            inverse = next(f for f in range(8) if torch.equal(dihedral(dihedral(patch, e), f), patch))
            crop = dihedral(patch, inverse)
            corner = crop[0, 0, 0].item()
            for i, img in enumerate(images):
                hits = (img[0] == corner).nonzero()
                if len(hits):
                    top, left = hits[0].tolist()
                    fits = top + p <= img.shape[1] and left + p <= img.shape[2]
                    if fits and torch.equal(img[:, top : top + p, left : left + p], crop):
                        found = True
                        seen_elements.add(inverse)
                        seen_images.add(i)
        assert found
    assert len(seen_images) == 2 and len(seen_elements) == 8


def test_augmentation_draws_are_roughly_uniform():
    img = torch.arange(16.0).reshape(1, 4, 4)
    sampler = PatchSampler([img], 4, 8000, generator=torch.Generator().manual_seed(1))
    patches = sampler.sample()
    counts = [sum(torch.equal(p, dihedral(img, e)) for p in patches) for e in range(8)]
    assert sum(counts) == 8000
    assert min(counts) > 850 and max(counts) < 1150  # expected 1000 each; 5 sigma ~ 150
    no_aug = PatchSampler([img], 4, 10, generator=torch.Generator().manual_seed(1), augment=False).sample()
    assert all(torch.equal(p, img) for p in no_aug)


def test_dihedral_elements_are_distinct_and_invertible():
    x = torch.rand(2, 1, 5, 7)
    outs = [dihedral(x, e) for e in range(8)]
    assert len({tuple(o.flatten().tolist()) for o in outs}) == 8
    for e in range(8):
        assert any(torch.equal(dihedral(outs[e], f), x) for f in range(8))


def test_real_training_patches(data_dir):
    images = load_images("train400")[:20]
    batch = PatchSampler(images, 40, 32, generator=torch.Generator().manual_seed(0)).sample()
    assert batch.shape == (32, 1, 40, 40) and batch.dtype == torch.float32
    assert batch.min() >= 0 and batch.max() <= 1


def test_bad_arguments():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(DataError, match="smaller than patch_size=50"):
        PatchSampler([torch.rand(1, 40, 60)], 50, 4, generator=g)
    with pytest.raises(DataError, match="same number of channels"):
        PatchSampler([torch.rand(1, 40, 60), torch.rand(3, 40, 60)], 8, 4, generator=g)
    with pytest.raises(DataError, match="at least one image"):
        PatchSampler([], 8, 4, generator=g)
