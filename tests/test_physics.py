"""The blur operator against scipy's wrap-mode correlation, a dense reference, and adjointness."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from lipbench.data import load_kernel
from lipbench.plumbing.errors import KernelError
from lipbench.restoration.physics import Blur, gaussian_noise

KERNELS = ["levin1", "levin4", "gaussian_1_6", "square_7"]


def _scipy_blur(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    return np.stack([[scipy.ndimage.correlate(c, k, mode="wrap") for c in img] for img in x])


@pytest.mark.parametrize("name", KERNELS)
def test_blur_equals_scipy_wrap_correlation(name):
    k = load_kernel(name)
    x = torch.rand(2, 3, 53, 38, generator=torch.Generator().manual_seed(0))
    expected = _scipy_blur(x.double().numpy(), k.double().numpy())
    np.testing.assert_allclose(Blur(k)(x).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(Blur(k)(x.double()).numpy(), expected, atol=1e-12)


def test_blur_on_a_bsd10_sized_image():
    k = load_kernel("levin2")
    x = torch.rand(1, 1, 321, 481, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(
        Blur(k)(x)[0, 0].numpy(), scipy.ndimage.correlate(x[0, 0].numpy(), k.numpy(), mode="wrap"), atol=1e-5
    )


def _dense(k: np.ndarray, h: int, w: int) -> np.ndarray:
    """The matrix of circular cross-correlation, built from its definition."""
    s = k.shape[0]
    c = (s - 1) // 2
    a = np.zeros((h * w, h * w))
    for i in range(h):
        for j in range(w):
            for u in range(s):
                for v in range(s):
                    a[i * w + j, ((i + u - c) % h) * w + (j + v - c) % w] += k[u, v]
    return a


def test_kernel_larger_than_the_image_wraps_exactly():
    k = load_kernel("levin4").double()  # 27×27 on a 9×7 image
    x = torch.rand(1, 1, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = _dense(k.numpy(), 9, 7) @ x.flatten().numpy()
    np.testing.assert_allclose(Blur(k)(x).flatten().numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("name", KERNELS)
def test_adjointness(name, dtype, rtol):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 1, 47, 30, generator=g, dtype=dtype)
    y = torch.randn(2, 1, 47, 30, generator=g, dtype=dtype)
    blur = Blur(load_kernel(name))
    lhs = (blur(x) * y).sum().item()
    rhs = (x * blur.adjoint(y)).sum().item()
    assert lhs == pytest.approx(rhs, rel=rtol, abs=rtol * x.numel() ** 0.5)


@pytest.mark.parametrize("name", [f"levin{i}" for i in range(1, 9)] + ["gaussian_1_6", "square_7"])
def test_norm_is_one_and_matches_the_dense_svd(name):
    blur = Blur(load_kernel(name))
    # 1 up to the float32 rounding of the stored kernel (its float64 sum is 1 within ~1e-8).
    assert blur.norm() == pytest.approx(blur.kernel.double().sum().item(), abs=1e-12)
    assert blur.norm((321, 481)) == pytest.approx(1.0, abs=1e-7)
    k = load_kernel(name).double().numpy()
    dense = _dense(k, 12, 10)
    assert np.linalg.norm(dense, 2) == pytest.approx(blur.norm((12, 10)), abs=1e-10)


@pytest.mark.parametrize(
    ("kind", "size", "shape"),
    [("signed", 5, (7, 6)), ("non-negative", 3, (8, 9)), ("signed", 9, (6, 5))],
    ids=["signed-5x5", "nonneg-sum-not-1", "signed-larger-than-grid"],
)
def test_norm_squared_is_the_top_singular_value_squared_of_the_dense_matrix(kind, size, shape):
    g = np.random.default_rng(10)
    k = g.normal(size=(size, size)) if kind == "signed" else 3 * g.random((size, size))  # sum ≠ 1
    if kind == "signed":
        k -= k.mean()  # a zero-sum (derivative-like) kernel: its top frequency is not the zero one
    blur = Blur(torch.from_numpy(k), normalised=False)
    dense = _dense(blur.kernel.double().numpy(), *shape)  # the float32-stored kernel, built by definition
    top = np.linalg.svd(dense, compute_uv=False)[0]
    norm2 = blur.norm_squared(shape)
    assert norm2.dtype == torch.float64 and norm2.shape == (1,)
    assert norm2.item() == pytest.approx(top**2, rel=1e-12)
    assert norm2.item() == pytest.approx(np.linalg.norm(dense.T @ dense, 2), rel=1e-12)  # ‖AᵀA‖ itself
    if kind == "non-negative":  # the zero frequency: (Σ k)², not 1
        assert norm2.item() == pytest.approx(blur.kernel.double().sum().item() ** 2, rel=1e-12)
        assert abs(norm2.item() - 1) > 1
    else:  # the zero frequency gives (Σ k)² ≈ 0
        assert abs(blur.kernel.double().sum().item()) < 1e-5 and norm2.item() > 1


def test_norm_squared_per_kernel_of_a_batch_and_of_the_papers_kernels():
    g = np.random.default_rng(11)
    kernels = [torch.from_numpy(g.normal(size=(s, s))) for s in (3, 5, 7)] + [load_kernel("levin4")]
    blur = Blur(kernels, normalised=False)
    expected = [np.linalg.norm(_dense(k.double().numpy(), 9, 8), 2) ** 2 for k in blur.kernels]
    np.testing.assert_allclose(blur.norm_squared((9, 8)).numpy(), expected, rtol=1e-12)
    for name in ["levin1", "levin8", "gaussian_1_6", "square_7"]:  # ≥ 0 and summing to 1: 1 on any grid
        assert Blur(load_kernel(name)).norm_squared((321, 481)).item() == pytest.approx(1.0, abs=2e-7)
    with pytest.raises(KernelError, match="sums to 2.0+1, not 1"):
        Blur(torch.full((3, 3), 2 / 9))


def test_gradient_step_takes_one_step_size_per_sample():
    A = Blur([load_kernel("levin1"), load_kernel("square_7")])
    g = torch.Generator().manual_seed(12)
    x, y = (torch.rand(2, 1, 20, 17, generator=g, dtype=torch.float64) for _ in range(2))
    gammas = torch.tensor([0.5, 1.7], dtype=torch.float64)
    out = A.gradient_step(y, gammas)(x)
    for b in range(2):
        expected = A.gradient_step(y, gammas[b].item())(x)[b]
        torch.testing.assert_close(out[b], expected, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="1 or 2 values"):
        A.gradient_step(y, torch.ones(3))


def test_adjoint_is_the_transpose_of_the_dense_matrix():
    k = load_kernel("levin5").double()
    y = torch.rand(1, 1, 11, 14, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    expected = _dense(k.numpy(), 11, 14).T @ y.flatten().numpy()
    np.testing.assert_allclose(Blur(k).adjoint(y).flatten().numpy(), expected, atol=1e-12)


def test_spectrum_is_cached_per_size_and_dtype():
    blur = Blur(load_kernel("levin1"))
    x = torch.rand(1, 1, 20, 24)
    blur(x)
    blur.adjoint(x)
    blur(x[..., :20])
    blur(x.double())
    assert len(blur._spectra) == 3


def test_invalid_kernels_are_rejected():
    with pytest.raises(KernelError, match="odd square size"):
        Blur(torch.full((4, 4), 1 / 16))
    with pytest.raises(KernelError, match="negative entries"):
        Blur(torch.tensor([[0.0, 0, 0], [-0.5, 1.0, 0.5], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"B×C×H×W"):
        Blur(load_kernel("square_7"))(torch.rand(5, 5))
    good, bad = load_kernel("square_7"), torch.full((3, 3), 0.2)
    with pytest.raises(KernelError, match=r"kernel mine sums to 1.8"):  # each kernel of a batch by its name
        Blur([good, bad], name=["square_7", "mine"])
    with pytest.raises(KernelError, match=r"kernel kernel\[1\] sums to 1.8"):
        Blur([good, bad])
    with pytest.raises(ValueError, match="1 names for 2 kernels"):
        Blur([good, good], name=["square_7"])


def test_noise_is_reproducible_and_has_the_right_std():
    x = torch.zeros(4, 1, 64, 64)
    a = gaussian_noise(x, 0.01, torch.Generator().manual_seed(7))
    b = gaussian_noise(x, 0.01, torch.Generator().manual_seed(7))
    c = gaussian_noise(x, 0.01, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.std().item() == pytest.approx(0.01, rel=0.03)
    state = torch.random.get_rng_state()
    gaussian_noise(x, 0.01, torch.Generator().manual_seed(7))
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched


def test_batched_kernels_blur_each_sample_with_its_own_kernel():
    names = ["levin1", "levin4", "gaussian_1_6"]  # 19, 27 and 25 wide
    kernels = [load_kernel(n) for n in names]
    x = torch.rand(3, 1, 40, 33, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y = torch.rand(3, 1, 40, 33, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    batched = Blur(kernels)
    for b, k in enumerate(kernels):
        expected = scipy.ndimage.correlate(x[b, 0].numpy(), k.double().numpy(), mode="wrap")
        np.testing.assert_allclose(batched(x)[b, 0].numpy(), expected, atol=1e-12)
    assert (batched(x) * y).sum().item() == pytest.approx((x * batched.adjoint(y)).sum().item(), rel=1e-12)
    assert batched.norm((40, 33)) == pytest.approx(1.0, abs=1e-7)
    with pytest.raises(ValueError, match="needs a batch of 3"):
        batched(x[:2])
    with pytest.raises(AttributeError, match="has .kernels"):
        _ = batched.kernel


@pytest.mark.parametrize("shape", [(40, 33), (32, 48)], ids=["odd-width", "even-width"])
def test_gradient_step_equals_the_four_fft_composition(shape):
    names = ["levin1", "levin4", "gaussian_1_6"]
    A = Blur([load_kernel(n) for n in names])
    g = torch.Generator().manual_seed(7)
    x = torch.rand(3, 1, *shape, generator=g, dtype=torch.float64)
    y = torch.rand(3, 1, *shape, generator=g, dtype=torch.float64)
    step = A.gradient_step(y, 1.7)
    expected = x - 1.7 * A.adjoint(A(x) - y)
    torch.testing.assert_close(step(x), expected, rtol=0, atol=1e-13)
    # and against scipy: Aᵀ is the correlation with the flipped kernel, i.e. a convolution
    k = load_kernel("levin4").double().numpy()
    r = scipy.ndimage.correlate(x[1, 0].numpy(), k, mode="wrap") - y[1, 0].numpy()
    ref = x[1, 0].numpy() - 1.7 * scipy.ndimage.convolve(r, k, mode="wrap")
    np.testing.assert_allclose(step(x)[1, 0].numpy(), ref, atol=1e-12)
    with pytest.raises(ValueError, match="needs a batch of 3"):
        A.gradient_step(y[:2], 1.0)
