"""PnP-PGD against closed-form fixed points; divergence of an expansive denoiser; reproducibility."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.ndimage
import torch

from lipbench.plumbing.errors import LipbenchError
from lipbench.restoration.groups import D4, Element, equivariant
from lipbench.restoration.physics import Blur
from lipbench.restoration.pnp import StepSizeError, pnp_pgd

H, W = 6, 5
MILD = torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.6, 0.1], [0.0, 0.1, 0.0]])  # |FFT| in [0.2, 1]


def _dense_blur(kernel: torch.Tensor) -> np.ndarray:
    blur = Blur(kernel)
    basis = torch.eye(H * W, dtype=torch.float64).reshape(H * W, 1, H, W)
    return blur(basis).reshape(H * W, H * W).numpy().T  # column j = A e_j


def _dense(op) -> np.ndarray:
    basis = torch.eye(H * W, dtype=torch.float64).reshape(H * W, 1, H, W)
    return op(basis).reshape(H * W, H * W).numpy().T


SHIFT = Element(shift=(1, 2))  # an orthogonal Q that is not an involution
DENOISERS = {
    "prox": lambda x: x / 1.5,  # J = (1 + τ)^-1 Id, τ = 0.5
    "averaged-shift": lambda x: 0.5 * (x + SHIFT.apply(x)),  # J = (Id + Q)/2
}


@pytest.mark.parametrize("name", list(DENOISERS))
@pytest.mark.parametrize("gamma", [1.0, 1.99])
def test_iterates_converge_to_the_analytic_fixed_point(name, gamma, device):
    denoiser = DENOISERS[name]
    A = Blur(MILD)
    y = torch.rand(1, 1, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a, m = _dense_blur(MILD), _dense(denoiser)
    # x* = M (x* − γ Aᵀ(A x* − y))  ⇔  (I − M (I − γ AᵀA)) x* = γ M Aᵀ y
    system = np.eye(H * W) - m @ (np.eye(H * W) - gamma * a.T @ a)
    expected = np.linalg.solve(system, gamma * m @ a.T @ y.flatten().numpy())
    result = pnp_pgd(denoiser, A, y.to(device), gamma=gamma, iters=3000, clamp=False)
    np.testing.assert_allclose(result.x.flatten().cpu().numpy(), expected, atol=1e-6)
    c = result.records.c.to_numpy()
    assert (np.diff(c) <= 1e-15).all()  # non-increasing for an averaged iteration
    assert c[-1] < 1e-10


@pytest.mark.parametrize("gamma", [1.0, 1.9])
def test_gamma_relative_to_the_norm_of_each_kernel_reaches_the_analytic_fixed_point(gamma, device):
    """γ_b = gamma / ‖A_bᵀA_b‖ per sample, with kernels whose ‖AᵀA‖ is far from 1 (dense SVD in numpy)."""
    g = np.random.default_rng(20)
    signed = g.normal(size=(3, 3))
    kernels = [torch.from_numpy(signed - signed.mean() + 0.3), 2.5 * MILD.double()]  # ‖AᵀA‖ ≠ 1, ≠ (Σ k)²
    A = Blur(kernels, normalised=False)
    y = torch.rand(2, 1, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    denoiser = DENOISERS["prox"]
    m = _dense(denoiser)
    result = pnp_pgd(denoiser, A, y.to(device), gamma=gamma, gamma_unit="lipschitz", iters=400, clamp=False)
    for b, kernel in enumerate(A.kernels):
        k = kernel.double().numpy()  # columns A e_j by scipy's wrap-mode correlation
        a = np.stack([scipy.ndimage.correlate(e.reshape(H, W), k, mode="wrap").ravel() for e in np.eye(H * W)], 1)
        step = gamma / np.linalg.svd(a, compute_uv=False)[0] ** 2
        assert result.gamma[b].item() == pytest.approx(step, rel=1e-12)
        assert abs(step - gamma) > 0.1 * gamma  # ‖AᵀA‖ far from 1 ...
        assert b == 1 or abs(step * k.sum() ** 2 - gamma) > 0.1 * gamma  # ... and, signed, not (Σ k)²
        system = np.eye(H * W) - m @ (np.eye(H * W) - step * a.T @ a)
        expected = np.linalg.solve(system, step * m @ a.T @ y[b].flatten().numpy())
        np.testing.assert_allclose(result.x[b].flatten().cpu().numpy(), expected, atol=1e-10)
    # the absolute unit keeps gamma as given, for every sample
    absolute = pnp_pgd(denoiser, A, y, gamma=gamma, iters=1, clamp=False, allow_large_step=True)
    assert absolute.gamma.tolist() == [gamma, gamma]
    with pytest.raises(ValueError, match="gamma unit must be one of"):
        pnp_pgd(denoiser, A, y, gamma=1.0, gamma_unit="relative", iters=1)


def test_expansive_denoiser_diverges_visibly():
    A = Blur(MILD)
    y = torch.rand(1, 1, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    result = pnp_pgd(lambda x: 1.6 * x, A, y, gamma=1.0, iters=60, clamp=False)
    c = result.records.c.to_numpy()
    assert c[-1] > 10 * c[0] and (np.diff(c[10:]) > 0).all()


def test_records_batched_psnr_and_recording_interval():
    kernels = [MILD, torch.ones(3, 3) / 9]
    x_true = torch.rand(2, 1, 20, 16, generator=torch.Generator().manual_seed(2))
    A = Blur(kernels)
    y = A(x_true)
    result = pnp_pgd(lambda x: x, A, y, gamma=1.0, iters=10, x_true=x_true, record_every=4, x0="adjoint")
    assert list(result.records.iteration.unique()) == [4, 8, 10]
    assert list(result.records["sample"]) == [0, 1] * 3
    from lipbench.restoration.metrics import psnr

    last = result.records[result.records.iteration == 10].psnr.to_numpy()
    np.testing.assert_allclose(last, psnr(result.x, x_true).numpy(), rtol=1e-12)
    # each sample is restored with its own kernel: same as running it alone
    alone = pnp_pgd(lambda x: x, Blur(kernels[1]), y[1:], gamma=1.0, iters=10, x0="adjoint")
    torch.testing.assert_close(alone.x[0], result.x[1])


def test_equivariant_random_mode_is_reproducible_and_varies_per_iteration():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False).double()
    torch.nn.init.normal_(net.weight, std=0.2)
    net.weight.data[0, 0, 1, 1] = 0.5
    A = Blur(MILD)
    y = torch.rand(1, 1, H, W + 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def run(seed):
        je = equivariant(net, D4(), "random", torch.Generator().manual_seed(seed))
        drawn = []

        def denoiser(z):
            out = je(z)
            drawn.append(je.last)
            return out

        return pnp_pgd(denoiser, A, y, gamma=1.0, iters=15), drawn

    (r1, d1), (r2, d2), (r3, d3) = run(5), run(5), run(6)
    assert torch.equal(r1.x, r2.x) and d1 == d2 and r1.records.equals(r2.records)
    assert len(set(d1)) > 3 and d1 != d3 and not torch.equal(r1.x, r3.x)


def test_lipschitz_records_every_m_iterations():
    A = Blur(MILD)
    y = torch.rand(2, 1, 8, 7, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    result = pnp_pgd(lambda x: x / 1.5, A, y, gamma=1.0, iters=6, lipschitz_every=3, lipschitz_iters=20)
    lip = result.records.set_index("iteration").lip_J
    assert lip.loc[[3, 6]].to_numpy() == pytest.approx(1 / 1.5, rel=1e-9)
    assert lip.loc[[1, 2, 4, 5]].isna().all()


def test_the_loop_reads_nothing_back_from_the_device_per_iteration(device):
    from conftest import ScalarReads

    from lipbench.models import DnCNN

    torch.manual_seed(0)  # test weights only
    model = DnCNN(depth=3, width=4).eval().to(device)
    x = torch.rand(2, 1, 24, 20, generator=torch.Generator().manual_seed(0)).to(device)
    A = Blur(MILD)
    y = A(x)
    reads, warned = [], []
    for iters in (3, 30):
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            with ScalarReads() as mode, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pnp_pgd(model, A, y, gamma=1.0, iters=iters, x_true=x, record_every=2)
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
        reads.append(mode.count)
        warned.append(sum("synchroniz" in str(w.message) for w in caught))
    assert reads == [1, 1]  # y's finiteness, checked once before the loop
    assert warned[0] == warned[1]  # CUDA: the copies of the records at the end only, whatever the length


def test_a_step_beyond_two_over_the_norm_or_a_nan_pixel_is_refused():
    A = Blur(MILD)
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = A(x)
    norm = A.norm_squared((16, 16)).item()
    pnp_pgd(lambda z: z, A, y, gamma=1.99 / norm, iters=1)  # just inside: runs
    with pytest.raises(StepSizeError, match=r"γ‖AᵀA‖ = 2.01 for kernel on a 16×16 grid"):
        pnp_pgd(lambda z: z, A, y, gamma=2.01 / norm, iters=1)
    assert pnp_pgd(lambda z: z, A, y, gamma=2.01 / norm, iters=1, allow_large_step=True).x.isfinite().all()
    y[0, 0, 3, 5] = float("nan")
    with pytest.raises(LipbenchError, match=r"y holds NaN or infinite values \(samples \[0\]\)"):
        pnp_pgd(lambda z: z, A, y, gamma=1.0, iters=1)
