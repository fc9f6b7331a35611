"""Total-variation prox (lipbench.models.tv) against exact solutions, scikit-image and its optimality certificate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from checkpoints import save_model
from skimage.restoration import denoise_tv_chambolle

from lipbench.data import load_images
from lipbench.models import TVDenoiser, build, load_model
from lipbench.models.tv import _fgp, divergence, gradient, tv, tv_prox


def noisy_crops(size: int, count: int, seed: int = 0) -> torch.Tensor:
    """``count``×1×size×size float64 crops of the first BSD10 images plus Gaussian noise σ = 0.05."""
    images = load_images("bsd10")[:count]
    x = torch.stack([im[:, 100 : 100 + size, 100 : 100 + size] for im in images]).double()
    return x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def objective(u: torch.Tensor, f: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """½‖u − f‖² + w·TV(u) per sample."""
    return 0.5 * (u - f).pow(2).sum(dim=(1, 2, 3)) + weight * tv(u)


def test_gradient_divergence_and_tv_by_hand() -> None:
    u = torch.tensor([[[[1.0, 4.0, 2.0], [0.0, 4.0, 5.0]]]], dtype=torch.float64)  # 2×3
    g = gradient(u)
    assert g.shape == (1, 1, 2, 2, 3)
    torch.testing.assert_close(g[0, 0, 0], torch.tensor([[-1.0, 0.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(g[0, 0, 1], torch.tensor([[3.0, -2.0, 0.0], [4.0, 1.0, 0.0]], dtype=torch.float64))
    expected_tv = np.hypot(-1, 3) + 2 + 3 + 4 + 1
    torch.testing.assert_close(tv(u), torch.tensor([expected_tv], dtype=torch.float64))
    # divergence by hand: div p = p_y[i] - p_y[i-1] + p_x[j] - p_x[j-1], the last row/column of p ignored
    p = torch.zeros(1, 1, 2, 2, 3, dtype=torch.float64)
    p[0, 0, 1, 0, 1] = 1.0  # x-component at (0, 1)
    p[0, 0, 0, 0, 2] = 2.0  # y-component at (0, 2)
    p[0, 0, 0, 1, 0] = 7.0  # y-component on the last row: ignored
    expected = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, -2.0]], dtype=torch.float64)
    expected[0, 2] -= 1.0
    torch.testing.assert_close(divergence(p)[0, 0], expected)


def test_divergence_is_minus_adjoint_of_gradient() -> None:
    gen = torch.Generator().manual_seed(1)
    u = torch.randn(3, 2, 7, 9, generator=gen, dtype=torch.float64)
    p = torch.randn(3, 2, 2, 7, 9, generator=gen, dtype=torch.float64)  # including the entries div ignores
    lhs = (gradient(u) * p).sum()
    rhs = -(u * divergence(p)).sum()
    assert abs(lhs - rhs).item() < 1e-10
    assert abs(lhs).item() > 1.0  # not a vacuous 0 = 0


def step_prox(left: float, right: float, m: int, n: int, weight: float) -> tuple[float, float]:
    """Exact 1-D TV prox of the step ``left`` (m samples) | ``right`` (n samples): each side moves toward
    the other by weight/m and weight/n while they do not cross, else both become the mean."""
    jump = right - left
    if weight * (1 / m + 1 / n) < abs(jump):
        s = np.sign(jump)
        return left + s * weight / m, right - s * weight / n
    mean = (m * left + n * right) / (m + n)
    return mean, mean


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_images_exact(device: torch.device, dtype: torch.dtype) -> None:
    """Exact prox of images that are constant along one direction with one step in the other.

    Derivation (one row of length N = m + n, value a on columns < m, b on the rest, a < b, w(1/m + 1/n) < b − a):
    the candidate u = (a + w/m | b − w/n) is optimal iff f − u = w·Dᵀq for some q with |q| ≤ 1 and q = sign(Du)
    where Du ≠ 0 (D forward differences, Neumann; (Dᵀq)_j = q_{j−1} − q_j, q_{−1} = q_{N−1} = 0). Solving gives
    q_j = (j + 1)/m for j < m and q_j = 1 − (j − m + 1)/n after: |q| ≤ 1, q_{m−1} = 1 at the jump, q_{N−1} = 0.
    If w(1/m + 1/n) ≥ b − a, the mean ū is optimal: q_j = Σ_{i≤j}(ū − f_i)/w peaks at mn(b − a)/((m + n)w) ≤ 1.
    A 2-D image constant along the other direction is certified by the field (q, 0) (isotropic norm |q|), so
    each row (or column) is this 1-D problem. Channels are separate images, weights per sample.
    """
    H, W = 8, 10
    f = torch.empty(2, 2, H, W, dtype=torch.float64)
    f[:, 0, :, :4], f[:, 0, :, 4:] = 0.2, 0.7  # channel 0: step between columns 3 and 4
    f[:, 1, :3, :], f[:, 1, 3:, :] = 0.9, 0.1  # channel 1: step down between rows 2 and 3
    weights = [0.3, 2.0]  # 2.0 merges both steps into their means
    expected = torch.empty_like(f)
    for b, w in enumerate(weights):
        lo, hi = step_prox(0.2, 0.7, 4, W - 4, w)
        expected[b, 0, :, :4], expected[b, 0, :, 4:] = lo, hi
        lo, hi = step_prox(0.9, 0.1, 3, H - 3, w)
        expected[b, 1, :3, :], expected[b, 1, 3:, :] = lo, hi
    assert expected[0, 0, 0, 0].item() == pytest.approx(0.2 + 0.3 / 4)  # the prediction is not just f
    assert expected[1, 1, 0, 0].item() == pytest.approx((3 * 0.9 + 5 * 0.1) / 8)
    u = tv_prox(f.to(device, dtype), torch.tensor(weights, device=device), iters=1000)
    assert u.dtype == dtype and u.device.type == device.type
    torch.testing.assert_close(u.cpu().double(), expected, atol=1e-5, rtol=0)
    constant = torch.full((1, 3, 5, 6), 0.4, dtype=dtype, device=device)
    torch.testing.assert_close(tv_prox(constant, 0.5), constant, atol=1e-7, rtol=0)
    torch.testing.assert_close(tv_prox(f.to(device, dtype), 0.0), f.to(device, dtype), atol=0, rtol=0)


def test_matches_skimage_and_is_certified() -> None:
    """Against ``skimage.restoration.denoise_tv_chambolle`` (0.26), which minimises Σ|∇u| + (λ/2)‖u − f‖² with
    its ``weight`` = 1/λ, i.e. ½‖u − f‖² + weight·TV(u): the same problem with the same weight (read from its
    source: forward differences with a zero difference past the last row/column, isotropic norm, out = f − div
    of its dual), so no mapping. Chambolle's projection converges slowly: at 2000 iterations its distance to our
    converged result was max 6e-5/3e-4/7e-4, RMS 3e-6/2e-5/1.2e-4 at w = 0.02/0.05/0.1 (48×48 BSD10 crop, σ = 0.05).
    A weight off by 10 % moves the solution by RMS ≥ 2.7e-3 (max ≥ 7e-3), a periodic boundary by RMS ≥ 4.8e-3.

    Our 2000 FGP iterations are certified by the duality gap w·Σ(|∇u| − ⟨∇u, p⟩) ≥ P(u) − P(u*) ≥ ½‖u − u*‖²
    (measured 1e-12, 3e-7, 5e-6), with |p| ≤ 1 and u = f + w·div p.
    """
    f = noisy_crops(48, 1).expand(3, -1, -1, -1).contiguous()
    weights = torch.tensor([0.02, 0.05, 0.1], dtype=torch.float64)
    u, p = _fgp(f, weights, 2000)
    assert torch.hypot(p[:, :, 0], p[:, :, 1]).max().item() <= 1 + 1e-12
    torch.testing.assert_close(u, f + weights.view(-1, 1, 1, 1) * divergence(p), atol=1e-14, rtol=0)
    gap = weights * (tv(u) - (gradient(u) * p).sum(dim=(1, 2, 3, 4)))
    assert (gap >= -1e-12).all() and (gap < 2e-5).all(), gap
    ours = objective(u, f, weights)
    ref = torch.stack(
        [
            torch.from_numpy(denoise_tv_chambolle(f[0, 0].numpy(), weight=w, eps=1e-12, max_num_iter=2000))
            for w in weights.tolist()
        ]
    ).unsqueeze(1)
    theirs = objective(ref, f, weights)
    assert (ours <= theirs + 1e-9).all(), (ours, theirs)
    assert (theirs - ours < 1e-3).all(), (ours, theirs)
    diff = u - ref
    assert diff.abs().max().item() < 2e-3
    assert diff.pow(2).mean(dim=(1, 2, 3)).sqrt().max().item() < 3e-4
    assert (u - f).abs().max().item() > 0.05  # the prox did something


def test_default_iters_accurate_on_noisy_crops() -> None:
    """iters=100 (float32, the default) vs 2000 (float64) on 64×64 noisy BSD10 crops (σ = 0.05), one weight each.

    Measured against 6000 iterations, at w = 0.01, 0.02, 0.05, 0.1: on 10 crops max abs 1.3e-5, 2.3e-4, 7.0e-4,
    2.0e-3 (RMS 2e-7, 3e-6, 4e-5, 2e-4); on the 4 crops here max abs 1.0e-5, 9.2e-5, 2.9e-4, 2.2e-3 (RMS 2.4e-7,
    6.7e-6, 3.8e-5, 2.9e-4). iters=200 divides these by 2 to 8. The 2000-iteration reference is within 4e-5 of 6000.
    """
    f = noisy_crops(64, 4, seed=1)
    weights = torch.tensor([0.01, 0.02, 0.05, 0.1], dtype=torch.float64)
    reference = tv_prox(f, weights, 2000)
    fast = tv_prox(f.float(), weights.float())
    assert fast.dtype == torch.float32
    err = (fast.double() - reference).abs()
    max_err = err.amax(dim=(1, 2, 3))
    rms = err.pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert (max_err[:3] < 1e-3).all() and max_err[3] < 3e-3, max_err
    assert (rms[:3] < 1e-4).all() and rms[3] < 4e-4, rms
    assert (reference - f).abs().amax(dim=(1, 2, 3)).min().item() > 0.02  # not vacuous: u moved from f


def test_per_sample_weights_and_batch_independence() -> None:
    gen = torch.Generator().manual_seed(2)
    f = torch.rand(4, 2, 12, 13, generator=gen)
    weights = torch.tensor([0.05, 0.2, 0.0, 0.1])
    batch = tv_prox(f, weights, iters=50)
    for b in range(4):
        alone = tv_prox(f[b : b + 1], weights[b].item(), iters=50)
        torch.testing.assert_close(batch[b : b + 1], alone, atol=1e-6, rtol=0)
    assert torch.equal(batch[2], f[2])  # weight 0 returns f exactly
    assert (batch[0] - batch[1]).abs().max() > 1e-3  # the weights act separately
    other = torch.cat([f[1:2], torch.randn(3, 2, 12, 13, generator=gen)])
    mixed = tv_prox(other, torch.tensor([0.2, 0.01, 0.5, 0.3]), iters=50)
    torch.testing.assert_close(mixed[0], batch[1], atol=1e-6, rtol=0)
    # channels are separate images
    per_channel = torch.cat([tv_prox(f[:, c : c + 1], weights, iters=50) for c in range(2)], dim=1)
    torch.testing.assert_close(batch, per_channel, atol=1e-6, rtol=0)


def test_firmly_nonexpansive() -> None:
    """‖Pf₁ − Pf₂‖² ≤ ⟨Pf₁ − Pf₂, f₁ − f₂⟩ for random pairs, far apart and close (where it is tightest)."""
    gen = torch.Generator().manual_seed(3)
    f1 = torch.rand(8, 1, 16, 16, generator=gen, dtype=torch.float64)
    delta = torch.randn(8, 1, 16, 16, generator=gen, dtype=torch.float64)
    delta[4:] *= 1e-2
    f2 = f1 + delta
    both = tv_prox(torch.cat([f1, f2]), 0.1, iters=2000)
    d = both[:8] - both[8:]
    lhs = d.pow(2).sum(dim=(1, 2, 3))
    rhs = (d * (f1 - f2)).sum(dim=(1, 2, 3))
    assert (lhs <= rhs + 1e-6).all(), (lhs, rhs)
    assert (lhs < 0.99 * delta.pow(2).sum(dim=(1, 2, 3))).all()  # strictly contracting here, not the identity


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"f": torch.zeros(3, 4, 4)}, "f must"),
        ({"f": torch.zeros(1, 1, 4, 4, dtype=torch.int64)}, "f must"),
        ({"weight": -0.1}, "weight must"),
        ({"weight": float("nan")}, "weight must"),
        ({"weight": "0.1"}, "weight must"),
        ({"weight": torch.tensor([0.1, 0.2])}, "weight must"),
        ({"weight": torch.tensor([[0.1]])}, "weight must"),
        ({"weight": torch.tensor([-0.1])}, "weight must"),
        ({"iters": 0}, "iters must"),
        ({"iters": 2.5}, "iters must"),
    ],
)
def test_argument_errors(kwargs: dict, match: str) -> None:
    args = {"f": torch.zeros(1, 1, 4, 4), "weight": 0.1, "iters": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        tv_prox(**args)


def test_denoiser_module(tmp_path) -> None:
    model = build("tv", weight=0.05)
    assert isinstance(model, TVDenoiser)
    assert model.state_dict() == {} and list(model.parameters()) == []
    x = noisy_crops(32, 2).float()
    torch.testing.assert_close(model(x), tv_prox(x, 0.05, 100), atol=0, rtol=0)
    save_model(tmp_path / "tv.pt", model, {"name": "tv", "weight": 0.05, "iters": 100})
    loaded = load_model(tmp_path / "tv.pt")
    assert isinstance(loaded, TVDenoiser) and not loaded.training
    assert (loaded.weight, loaded.iters) == (0.05, 100)
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="x must"):
        model(torch.zeros(1, 3, 8, 8))
    for bad in ({"weight": -1.0}, {"iters": 0}, {"channels": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TVDenoiser(**bad)


def test_denoiser_clamps_in_eval_mode_only() -> None:
    x = 0.2 * noisy_crops(16, 1).float()
    x[..., :8] += 1.2  # left half beyond 1, right half partly below 0
    x[..., 8:] -= 0.2
    assert x.max() > 1 and x.min() < 0
    model = TVDenoiser(weight=0.02, clamp=True)
    train_out = model.train()(x)
    torch.testing.assert_close(train_out, tv_prox(x, 0.02), atol=0, rtol=0)
    assert train_out.max() > 1 and train_out.min() < 0
    eval_out = model.eval()(x)
    torch.testing.assert_close(eval_out, tv_prox(x.clamp(0, 1), 0.02).clamp(0, 1), atol=0, rtol=0)
    assert eval_out.min() >= 0 and eval_out.max() <= 1
    assert not torch.equal(eval_out, x.clamp(0, 1))
