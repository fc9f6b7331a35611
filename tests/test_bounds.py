"""Certified upper bounds on ‖∂Q‖² (lipbench.lipschitz.bounds), checked against dense matrices and
dense Jacobians (torch.func.jacrev, SVD in float64)."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import jacrev, vmap

from lipbench.lipschitz import UpperBound, conv_norm_bound, conv_norm_circular, upper_bound
from lipbench.models import CertifiedDenoiser, DnCNN, TVDenoiser
from lipbench.models.dncnn import SILU_LIPSCHITZ

REL = 1e-9
SIZE = 6  # DnCNN / certified test images: 1×1×6×6, Jacobians 36×36


def matrix(f, shape: tuple[int, ...]) -> torch.Tensor:
    """The dense matrix (outputs × inputs) of the linear map ``f`` on one ``shape`` tensor (no batch)."""
    x = torch.zeros(1, *shape, dtype=torch.float64)
    return jacrev(lambda v: f(v.reshape(1, *shape)).flatten())(x.flatten())


def sigma(f, shape: tuple[int, ...]) -> float:
    return torch.linalg.svdvals(matrix(f, shape))[0].item()


def circular(weight: torch.Tensor):
    ph, pw = weight.shape[-2] // 2, weight.shape[-1] // 2
    return lambda x: F.conv2d(F.pad(x, (pw, pw, ph, ph), mode="circular"), weight)


def max_lip2_q(model: nn.Module, points: torch.Tensor) -> float:
    """max over ``points`` (N×1×H×W) of ‖∂Q(x)‖² from the dense Jacobian of Q = 2J − Id."""
    shape = points.shape[1:]

    def q(v: torch.Tensor) -> torch.Tensor:
        return (2 * model(v.reshape(1, *shape)) - v.reshape(1, *shape)).flatten()

    jacobians = vmap(jacrev(q))(points.flatten(1))
    return (torch.linalg.matrix_norm(jacobians, ord=2).max() ** 2).item()


def test_circular_norm_is_the_dense_svd_norm():
    torch.manual_seed(0)
    weight = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    expected = sigma(circular(weight), (3, 5, 7))
    assert conv_norm_circular(weight, (5, 7)) == pytest.approx(expected, rel=REL)
    big = torch.randn(2, 2, 5, 5, dtype=torch.float64)  # larger than the grid: its taps wrap around
    assert conv_norm_circular(big, (3, 4)) == pytest.approx(sigma(circular(big), (2, 3, 4)), rel=REL)
    assert conv_norm_circular(big.float(), (3, 4)) == pytest.approx(sigma(circular(big), (2, 3, 4)), rel=1e-6)


@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "padding", "shape"),
    [
        (3, 2, (3, 3), (1, 1), (5, 7)),
        (2, 3, (5, 5), (2, 2), (6, 9)),
        (1, 1, (3, 3), (1, 1), (4, 4)),
        (2, 2, (3, 5), (1, 2), (7, 5)),
        (2, 2, (3, 3), (0, 0), (6, 6)),  # "valid": a smaller output, still a restriction
    ],
)
def test_zero_padded_bound_dominates_the_dense_norm(cin, cout, kernel, padding, shape):
    torch.manual_seed(1)
    for _ in range(3):
        weight = torch.randn(cout, cin, *kernel, dtype=torch.float64)
        dense = sigma(lambda x, w=weight: F.conv2d(x, w, padding=padding), (cin, *shape))
        assert conv_norm_bound(weight, shape, padding) >= dense * (1 - REL)


def test_zero_padded_bound_is_close_at_16x16():
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    dense = sigma(lambda x: F.conv2d(x, conv.weight, padding=1), (2, 16, 16))
    bound = conv_norm_bound(conv, (16, 16))
    assert dense * (1 - REL) <= bound <= 1.5 * dense
    assert bound == conv_norm_bound(conv.weight, (16, 16), (1, 1))


def test_closed_forms():
    for a, centre in ((-2.5, (1, 1)), (0.7, (0, 2))):  # a shifted delta too: a permutation, then cropped
        delta = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
        delta[0, 0, centre[0], centre[1]] = a
        assert conv_norm_circular(delta, (5, 6)) == pytest.approx(abs(a), rel=1e-12)
        assert conv_norm_bound(delta, (5, 6), (1, 1)) == pytest.approx(abs(a), rel=1e-12)
    mean = torch.full((1, 1, 3, 3), 1 / 9, dtype=torch.float64)
    assert conv_norm_circular(mean, (7, 7)) == pytest.approx(1.0, rel=1e-12)
    assert sigma(circular(mean), (1, 7, 7)) == pytest.approx(1.0, rel=1e-12)
    zero_padded = sigma(lambda x: F.conv2d(x, mean, padding=1), (1, 7, 7))
    assert zero_padded < 0.99
    assert conv_norm_bound(mean, (7, 7), (1, 1)) >= zero_padded


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(2, 2, 3, stride=2, padding=1),
        nn.Conv2d(2, 2, 3, dilation=2, padding=2),
        nn.Conv2d(2, 2, 3, groups=2, padding=1),
        nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"),
        nn.Conv2d(2, 2, 3, padding="same"),
    ],
)
def test_unsupported_convolutions_are_refused(conv):
    with pytest.raises(ValueError, match="conv_norm_bound"):
        conv_norm_bound(conv, (8, 8))


def dncnn(seed: int, residual: bool, activation: str, batchnorm: bool, slope: float = 0.2) -> DnCNN:
    """Depth 3, width 4, random kernels of Frobenius norm 0.8 (above the default init's; ∏‖Wᵢ‖ ≈ 1.4–2)
    and random biases; with batch-norm, random affine parameters and running statistics."""
    torch.manual_seed(seed)
    model = DnCNN(1, 3, 4, activation, slope, residual=residual, batchnorm=batchnorm).double()
    with torch.no_grad():
        for layer in model.body:
            if isinstance(layer, nn.Conv2d):
                layer.weight.normal_()
                layer.weight.mul_(0.8 / layer.weight.norm())
                if layer.bias is not None:
                    layer.bias.uniform_(-0.5, 0.5)
            elif isinstance(layer, nn.BatchNorm2d):
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.3, 3.0)
                layer.weight.uniform_(-1.5, 1.5)
                layer.bias.uniform_(-0.5, 0.5)
    return model.eval()


def dense_bound(model: DnCNN) -> float:
    """(1 + 2·L^a·∏ σᵢ)² with σᵢ the dense SVD norm of each conv (then batch-norm, its affine part
    removed) as a circular convolution on the zero-padded (H + 2)×(W + 2) grid: the hook's value,
    computed without its FFT or its batch-norm folding."""
    layers, product, grid = [*model.body, nn.Identity()], 1.0, (SIZE + 2, SIZE + 2)
    for layer, after in pairwise(layers):
        if isinstance(layer, nn.Conv2d):
            after = after if isinstance(after, nn.BatchNorm2d) else nn.Identity()
            linear = lambda x, c=layer, bn=after: bn(circular(c.weight)(x)) - bn(circular(c.weight)(0 * x))  # noqa: E731
            product *= sigma(linear, (layer.in_channels, *grid))
        elif isinstance(layer, nn.LeakyReLU):
            product *= max(1.0, abs(layer.negative_slope))
        elif isinstance(layer, nn.SiLU):
            product *= SILU_LIPSCHITZ
    return (1 + 2 * product) ** 2


def points(seed: int) -> torch.Tensor:
    """64 uniform points in [0, 1]^(1×1×6×6), and adversarially scaled ones: far outside (every unit
    saturated one way or the other), tiny, and a checkerboard."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(64, 1, SIZE, SIZE, generator=g, dtype=torch.float64)
    checker = (torch.arange(SIZE)[:, None] + torch.arange(SIZE)).remainder(2).to(torch.float64)
    scaled = [c * (u[:4] - 0.5) for c in (100.0, -100.0, 1e-6)] + [c * checker.expand(1, 1, -1, -1) for c in (1, -50)]
    return torch.cat([u, *scaled])


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize(
    ("activation", "batchnorm"), [("leaky_relu", False), ("relu", False), ("leaky_relu", True), ("silu", False)]
)
def test_dncnn_bound_dominates_the_dense_jacobians(residual, activation, batchnorm):
    model = dncnn(3, residual, activation, batchnorm)
    bound = model.fne_upper_bound((SIZE, SIZE))
    assert isinstance(bound, UpperBound)
    assert bound.lip2_Q == pytest.approx(dense_bound(model), rel=REL)
    assert bound.lip2_Q < 100  # not trivially huge
    assert ("batch-norm folded" in bound.how) == batchnorm
    assert "3 convolutions at 6×6" in bound.how
    x = points(4)
    assert max_lip2_q(model, x) <= bound.lip2_Q * (1 + REL)
    model.clamp = True  # eval mode: input and output clamped to [0, 1]
    assert model.clamps
    assert max_lip2_q(model, x) <= bound.lip2_Q * (1 + REL)
    assert upper_bound(model, (SIZE, SIZE)) == bound


def test_dncnn_bound_is_attained_by_aligned_deltas():
    """Kernels a·δ, b·δ, c·δ on channel 0 and biases that keep every unit active on [0, 1]: J = (1 + abc)·x
    + const there, so ‖∂Q‖ = 1 + 2abc, the bound (the delta kernels' norms are exact)."""
    model = DnCNN(1, 3, 4, "relu", residual=True).double().eval()
    with torch.no_grad():
        for scale, layer in zip((1.5, 0.8, 1.2), model.body[::2], strict=True):
            layer.weight.zero_()
            layer.weight[0, 0, 1, 1] = scale
            layer.bias.fill_(10.0)
    bound = model.fne_upper_bound((SIZE, SIZE))
    assert bound.lip2_Q == pytest.approx((1 + 2 * 1.5 * 0.8 * 1.2) ** 2, rel=1e-12)
    x = torch.rand(8, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    assert max_lip2_q(model, x) == pytest.approx(bound.lip2_Q, rel=1e-12)


def test_silu_lipschitz_constant_is_its_largest_slope_rounded_up():
    t = torch.linspace(-20, 20, 400_001, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(F.silu(t).sum(), t)
    assert slope.abs().max().item() == pytest.approx(1.0998, abs=1e-4)  # at t ≈ 2.40; SiLU' → 0, 1 in the tails
    assert slope.abs().max().item() <= SILU_LIPSCHITZ < slope.abs().max().item() + 1e-3
    assert "1.1^2·" in dncnn(8, True, "silu", False).fne_upper_bound((SIZE, SIZE)).how


def test_dncnn_activation_slope_above_one_enters_the_bound():
    model = dncnn(5, True, "leaky_relu", False, slope=-1.5)
    bound = model.fne_upper_bound((SIZE, SIZE))
    assert "1.5^2·" in bound.how
    assert bound.lip2_Q == pytest.approx(dense_bound(model), rel=REL)
    assert max_lip2_q(model, points(6)) <= bound.lip2_Q * (1 + REL)


def test_dncnn_bound_refuses_training_batchnorm():
    model = dncnn(7, True, "relu", True).train()
    with pytest.raises(ValueError, match="batch-norm in eval mode"):
        model.fne_upper_bound((SIZE, SIZE))


def certified(seed: int) -> CertifiedDenoiser:
    """Delta lift and projection (the init), two SLL blocks with random kernels and biases and the
    gate near 1: nearly tight (‖∂Q‖² ≈ 0.99 at some points)."""
    torch.manual_seed(seed)
    model = CertifiedDenoiser(1, depth=4, width=4, activation="leaky_relu", negative_slope=0.3).double()
    with torch.no_grad():
        for block in model.blocks:
            block.weight.uniform_()
            block.bias.uniform_(-0.3, 0.3)
            block.gate.fill_(3.0)
    return model.eval()


def test_certified_bound_is_one_and_holds():
    model = certified(0)
    bound = upper_bound(model, (SIZE, SIZE))
    assert bound == UpperBound(1.0, "1 by construction (SLL/AOL layers)")
    assert 0.95 < max_lip2_q(model, points(9)) <= 1 + 1e-6


def test_certified_bound_is_for_the_unclamped_j():
    """clamp ∘ J ∘ clamp is a composition of three FNE maps, 3/4-averaged but not FNE: ‖∂Q‖² exceeds
    the hook's 1 (as its docstring says), and stays within 4 (‖2T − Id‖ ≤ 1/2 + 3/2 for T 3/4-averaged)."""
    model = certified(0)
    model.clamp = True
    assert 1.01 < max_lip2_q(model, points(9)) <= 4


def test_tv_bound_names_its_iterations():
    bound = upper_bound(TVDenoiser(weight=0.1, iters=7), (SIZE, SIZE))
    assert bound is not None
    assert bound.lip2_Q == float("inf")  # the exact prox's 1 does not hold for a truncated one
    assert "7 FGP iterations, not the exact prox (whose bound is 1)" in bound.how


def test_no_hook_no_bound():
    assert upper_bound(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1)), (SIZE, SIZE)) is None
