"""PSNR and SSIM against scikit-image's reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lipbench.restoration.metrics import psnr, ssim


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(shape, generator=g)
    return (ref + 0.05 * torch.randn(shape, generator=g)).clamp(0, 1), ref


def test_psnr_matches_skimage_on_the_cropped_image():
    x, ref = _pair((3, 1, 41, 57))
    got = psnr(x, ref)
    assert got.shape == (3,)
    for b in range(3):
        expected = peak_signal_noise_ratio(ref[b, 0, 6:-6, 6:-6].numpy(), x[b, 0, 6:-6, 6:-6].numpy(), data_range=1)
        assert got[b].item() == pytest.approx(expected, abs=1e-6)
    whole = peak_signal_noise_ratio(ref[0].numpy(), x[0].numpy(), data_range=1)
    assert psnr(x[0], ref[0], crop=0).item() == pytest.approx(whole, abs=1e-6)


def test_psnr_crop_changes_the_value_where_borders_differ():
    ref = torch.zeros(1, 1, 20, 20)
    x = ref.clone()
    x[..., :3, :] = 0.5  # an error only in the top border
    assert torch.isinf(psnr(x, ref, crop=6)).all()
    assert psnr(x, ref, crop=0).item() == pytest.approx(10 * np.log10(1 / (0.25 * 60 / 400)))


def test_ssim_matches_skimage_grey_and_colour():
    x, ref = _pair((2, 1, 40, 50), seed=1)
    got = ssim(x, ref)
    for b in range(2):
        a, r = x[b, 0, 6:-6, 6:-6].double().numpy(), ref[b, 0, 6:-6, 6:-6].double().numpy()
        assert got[b].item() == pytest.approx(structural_similarity(a, r, data_range=1, gaussian_weights=True))
    xc, rc = _pair((3, 40, 50), seed=2)
    expected = structural_similarity(
        np.moveaxis(xc[:, 6:-6, 6:-6].double().numpy(), 0, -1),
        np.moveaxis(rc[:, 6:-6, 6:-6].double().numpy(), 0, -1),
        data_range=1,
        gaussian_weights=True,
        channel_axis=-1,
    )
    assert ssim(xc, rc).item() == pytest.approx(expected)
    assert ssim(ref, ref).allclose(torch.ones(2, dtype=torch.float64))


def test_metric_argument_errors():
    x = torch.rand(1, 1, 10, 10)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(x, torch.rand(1, 1, 10, 11))
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr(x, x, crop=5)
    with pytest.raises(ValueError, match="at least 11×11 after the 6-pixel crop"):
        ssim(torch.rand(1, 1, 22, 30), torch.rand(1, 1, 22, 30))
