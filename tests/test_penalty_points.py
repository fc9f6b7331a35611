"""The penalty's PnP-like points (``lipbench train --penalty-points``) against scipy, closed-form
fixed points and an independent spectral norm; the training kernels are not test kernels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from lipbench.data import load_kernel
from lipbench.lipschitz import Reflected, fne_penalty, spectral_norm
from lipbench.models import DnCNN
from lipbench.restoration.penalty_points import KERNEL_SIZE, penalty_points, pnp_like_points, training_kernel

TEST_KERNELS = [f"levin{i}" for i in range(1, 9)] + ["gaussian_1_6"]


def _padded(k: torch.Tensor, size: int) -> torch.Tensor:
    pad = (size - k.shape[-1]) // 2
    return F.pad(k.double(), (pad, pad, pad, pad))


def test_training_kernels_are_normalised_blurs_unlike_any_test_kernel(data_dir):
    g = torch.Generator().manual_seed(0)
    kernels = [training_kernel(g) for _ in range(300)]
    tests = [_padded(load_kernel(name, data_dir), 27) for name in TEST_KERNELS]
    for k in kernels:
        assert k.shape == (KERNEL_SIZE, KERNEL_SIZE) and (k >= 0).all()
        assert k.sum().item() == pytest.approx(1.0, abs=1e-5)
        nearest = min(torch.linalg.vector_norm(_padded(k, 27) - t).item() for t in tests)
        assert nearest > 0.01  # measured: ≥ 0.03 over these 300 draws
    assert len({tuple(k.flatten().tolist()) for k in kernels}) == 300


def test_blurred_points_are_the_wrap_mode_correlation_plus_noise():
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    kernel = training_kernel(torch.Generator().manual_seed(2))  # the first draw of the same stream
    got = pnp_like_points("blurred", x, g, max_noise=0.0)
    expected = scipy.ndimage.correlate(x[0, 0].double().numpy(), kernel.double().numpy(), mode="wrap")
    np.testing.assert_allclose(got[0, 0].numpy(), expected, atol=1e-5)
    noisy = pnp_like_points("blurred", x, torch.Generator().manual_seed(2), max_noise=0.02)
    assert 0 < (noisy - got).std().item() < 0.02


def test_gradient_points_keep_a_fixed_point_and_never_move_away_from_the_solution():
    flat = torch.full((4, 1, 24, 24), 0.3)  # A x = x for a normalised kernel: y = x, u = x, z = x
    torch.testing.assert_close(pnp_like_points("gradient", flat, torch.Generator().manual_seed(0), 0.0), flat)
    x = torch.rand(8, 1, 24, 24, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    z = pnp_like_points("gradient", x, g, max_noise=0.0)
    y = pnp_like_points("blurred", x, torch.Generator().manual_seed(4), max_noise=0.0)  # same kernels
    # z − x = (I − γAᵀA)(u − x) with 0 ≤ γ|K(ω)|² ≤ 1.99 and u − x = τ (y − x): no farther than y
    assert (
        torch.linalg.vector_norm((z - x).flatten(1), dim=1)
        <= torch.linalg.vector_norm((y - x).flatten(1), dim=1) + 1e-5
    ).all()
    assert not torch.allclose(z, x)


def test_each_sample_gets_its_kind_in_turn():
    x = torch.rand(6, 1, 20, 20, generator=torch.Generator().manual_seed(5))
    tilde = torch.rand(6, 1, 20, 20, generator=torch.Generator().manual_seed(6))
    points = penalty_points(("tilde", "blurred", "gradient"), x, tilde, torch.Generator().manual_seed(7))
    assert torch.equal(points[[0, 3]], tilde[[0, 3]])
    assert not torch.equal(points[[1, 2, 4, 5]], tilde[[1, 2, 4, 5]])
    with pytest.raises(ValueError, match="penalty points"):
        penalty_points(("tilde", "search"), x, tilde, torch.Generator())


def test_the_penalty_is_the_norm_at_the_given_points():
    torch.manual_seed(0)
    model = DnCNN(depth=3, width=8)
    x = torch.rand(4, 1, 16, 16)
    points = pnp_like_points("gradient", x, torch.Generator().manual_seed(8))
    got = fne_penalty(model, x, x, eps=0.05, n_iter=200, tol=1e-6, generator=torch.Generator().manual_seed(0),
                      points=points)  # fmt: skip
    exact = spectral_norm(Reflected(model), points, max_iter=500, tol=1e-7, solver="lanczos").sigma.square()
    torch.testing.assert_close(got.sigma2, exact, rtol=1e-3, atol=0)


def test_training_with_pnp_like_points_is_reproducible(tmp_path, data_dir):
    from lipbench.cli import main

    args = ["train", "--max-images", "4", "--patch-size", "24", "--batch-size", "4", "--steps", "3", "--lam", "0.1",
            "--model-kwargs", "depth=3", "width=8", "--penalty-points", "tilde", "gradient", "--root", str(data_dir),
            "--device", "cpu", "--quiet"]  # fmt: skip
    for run in ("a", "b", "c"):
        extra = ["--penalty-points", "tilde"] if run == "c" else []
        assert main([*args, *extra, "--out", str(tmp_path / run)]) == 0
    weights = {r: torch.load(tmp_path / r / "model.pt", weights_only=True)["model"] for r in "abc"}
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not all(torch.equal(weights["a"][k], weights["c"][k]) for k in weights["a"])


def test_adversarial_points_climb_to_the_closed_form_maximum():
    from lipbench.lipschitz.search import reflected_lower_bound
    from lipbench.restoration.penalty_points import adversarial_step

    net = DnCNN(depth=2, width=1, activation="relu").eval()  # J(x) = x + relu(x − 0.6)/2: max ‖∂Q‖² = 4
    with torch.no_grad():
        for conv in (net.body[0], net.body[2]):
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1] = 1.0
        net.body[2].weight.mul_(0.5)
        net.body[0].bias.fill_(-0.6)
        net.body[2].bias.zero_()
    particles = torch.full((2, 1, 8, 8), 0.5)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        particles = adversarial_step(net, particles, g)
    assert ((particles >= 0) & (particles <= 1)).all()
    _, lower = reflected_lower_bound(net, particles, torch.ones_like(particles), 20)
    assert lower.tolist() == pytest.approx([4.0, 4.0], rel=1e-4)


def test_a_resumed_run_with_adversarial_points_ends_bit_identical(tmp_path, data_dir):
    from lipbench.cli import main

    args = ["train", "--max-images", "4", "--patch-size", "24", "--batch-size", "4", "--lam", "0.1",
            "--model-kwargs", "depth=3", "width=8", "--penalty-points", "tilde", "adversarial", "--root",
            str(data_dir), "--device", "cpu", "--quiet", "--checkpoint-every", "2", "--probe-size", "0"]  # fmt: skip
    assert main([*args, "--steps", "4", "--out", str(tmp_path / "straight")]) == 0
    assert main([*args, "--steps", "2", "--out", str(tmp_path / "cut")]) == 0
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert saved["particles"].shape == (2, 1, 24, 24)  # the adversarial half of the batch
    assert main([*args, "--steps", "4", "--resume", "--out", str(tmp_path / "cut")]) == 0
    a, b = (torch.load(tmp_path / r / "model.pt", weights_only=True)["model"] for r in ("straight", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
