"""Spectral norms against the exact SVD of dense Jacobians; the FNE penalty's gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lipbench.lipschitz import (
    Autograd,
    LipschitzError,
    PiecewiseLinear,
    Reflected,
    fne_penalty,
    interpolate,
    linearize,
    piecewise_linear,
    spectral_norm,
    supports_fast_path,
)
from lipbench.lipschitz.linearize import GroupMeanLinearization, ReflectedLinearization
from lipbench.models import DnCNN
from lipbench.plumbing.errors import LipbenchError

SHAPE = (3, 1, 7, 5)  # non-square
# The exact-SVD checks assert σ to rtol 1e-4; the solver stops once σ has settled to ITER_TOL, three
# orders tighter (measured error at ITER_TOL on every net and path below: at most 1.0e-7), not to 1e-13.
ITER_TOL = 1e-7


def _seeded(module: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # only to initialise the test nets' weights
    for p in module.parameters():
        nn.init.normal_(p, std=0.35)
    return module.double().eval()


def linear_net() -> nn.Module:
    return _seeded(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 1, 3, padding=1, bias=False)), 0)


def dncnn_leaky() -> nn.Module:
    return _seeded(DnCNN(depth=4, width=6, negative_slope=0.2), 1)


def dncnn_relu_no_residual() -> nn.Module:
    return _seeded(DnCNN(depth=3, width=5, activation="relu", residual=False), 2)


def dncnn_silu_clamped() -> nn.Module:
    model = _seeded(DnCNN(depth=4, width=6, activation="silu"), 8)
    model.clamp = True  # eval mode: J's output clamped to [0, 1] (test_fast_and_autograd… clamps inputs too)
    return model


class TanhNet(nn.Module):
    """Not piecewise linear: only the autograd path applies."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x):
        return x + self.b(torch.tanh(self.a(x)))


NETS = {
    "linear": linear_net,
    "dncnn": dncnn_leaky,
    "relu": dncnn_relu_no_residual,
    "silu": dncnn_silu_clamped,
    "tanh": lambda: _seeded(TanhNet(), 3),
}


def exact_sigma(f, x: torch.Tensor) -> torch.Tensor:
    """Top singular value of the dense Jacobian of each sample (float64)."""
    n = x[0].numel()
    out = []
    for b in range(x.shape[0]):
        jac = torch.func.jacrev(f)(x[b : b + 1]).reshape(n, n)
        out.append(torch.linalg.matrix_norm(jac, ord=2))
    return torch.stack(out)


def _grad(p: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(p) if p.grad is None else p.grad.clone()


def _input(seed: int = 0) -> torch.Tensor:
    return torch.rand(SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


CASES = [
    (net, method)
    for net in NETS
    for method in ("fast", "autograd", "traced")
    if not (net == "tanh" and method == "fast")
]


@pytest.mark.parametrize("reflect", [False, True], ids=["J", "2J-Id"])
@pytest.mark.parametrize(("net", "method"), CASES)
def test_spectral_norm_matches_the_exact_svd(net, method, reflect, device):
    model = NETS[net]()
    f = Reflected(model) if reflect else model
    x = _input()
    exact = exact_sigma(f, x)  # on the CPU
    f.to(device)
    result = spectral_norm(
        f, x.to(device), max_iter=20000, tol=ITER_TOL, method=method, generator=torch.Generator().manual_seed(4)
    )
    sigma = result.sigma.cpu()
    torch.testing.assert_close(sigma, exact, rtol=1e-4, atol=0)
    assert (sigma <= exact * (1 + 1e-12)).all()  # a Rayleigh quotient never overshoots
    assert result.converged.all()


def test_fast_path_is_chosen_only_when_valid():
    assert supports_fast_path(dncnn_leaky()) and supports_fast_path(Reflected(linear_net()))
    assert not supports_fast_path(TanhNet())
    strided = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1))
    assert not supports_fast_path(strided)
    with pytest.raises(TypeError, match="autograd path"):
        linearize(TanhNet(), _input(), method="fast")


class UserStack(nn.Module):
    """A user's own residual conv + LeakyReLU net (no DnCNN): the autograd path."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, padding=1))

    def forward(self, x):
        return x + self.layers(x)


class UserStackWithHook(UserStack):
    """The same net supplying its own fast path, as a ``module:factory`` model may."""

    def fast_linearization(self):
        return piecewise_linear(self.layers, residual=True)


def test_a_users_model_supplies_its_own_fast_path():
    from lipbench.restoration.groups import D4, equivariant

    hooked, plain = _seeded(UserStackWithHook(), 8), _seeded(UserStack(), 8)  # the same weights
    x = _input()
    u = torch.randn(SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lin = linearize(hooked, x)
    assert isinstance(lin, PiecewiseLinear) and supports_fast_path(hooked)
    torch.testing.assert_close(lin.out, hooked(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lin.jvp(u), torch.func.jvp(hooked, (x,), (u,))[1], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lin.vjp(u), torch.func.vjp(hooked, x)[1](u)[0], rtol=1e-10, atol=1e-10)
    g = torch.Generator().manual_seed(4)
    fast = spectral_norm(hooked, x, max_iter=20000, tol=1e-8, generator=g)  # asserted to 1e-5: iterated to 1e-8
    torch.testing.assert_close(fast.sigma, exact_sigma(hooked, x), rtol=1e-5, atol=0)
    # and inside the wrappers
    assert isinstance(linearize(Reflected(hooked), x), ReflectedLinearization)
    assert isinstance(linearize(Reflected(hooked), x).inner, PiecewiseLinear)
    mean = linearize(equivariant(hooked, D4(), "mean"), x)
    assert isinstance(mean, GroupMeanLinearization) and all(isinstance(p, PiecewiseLinear) for p in mean.parts)

    # without the hook: the autograd path, the same numbers
    assert not supports_fast_path(plain) and not supports_fast_path(equivariant(plain, D4(), "mean"))
    assert isinstance(linearize(plain, x), Autograd)
    assert isinstance(linearize(equivariant(plain, D4(), "mean"), x), Autograd)
    with pytest.raises(TypeError, match="autograd path"):
        linearize(plain, x, "fast")
    torch.testing.assert_close(linearize(plain, x).jvp(u), lin.jvp(u), rtol=1e-10, atol=1e-10)
    slow = spectral_norm(plain, x, max_iter=20000, tol=1e-8, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(slow.sigma, fast.sigma, rtol=1e-5, atol=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DnCNN(depth=5, width=8).eval(),
        lambda: DnCNN(depth=4, width=8, activation="relu", clamp=True).eval(),
        lambda: DnCNN(depth=4, width=8, batchnorm=True).eval(),
        lambda: DnCNN(depth=4, width=8, activation="silu", clamp=True).eval(),
    ],
    ids=["leaky", "relu-clamp", "batchnorm-eval", "silu-clamp"],
)
def test_fast_and_autograd_paths_agree_in_float32(make, device):
    torch.manual_seed(0)
    model = make()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2)
    model.to(device)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(4, 1, 16, 12, generator=g) * 1.2 - 0.1).to(device)  # some pixels outside [0, 1]: the clamp
    u = torch.randn(4, 1, 16, 12, generator=g).to(device)
    for f in (model, Reflected(model)):
        fast = linearize(f, x, "fast")
        torch.testing.assert_close(fast.out, f(x))
        for other in (linearize(f, x, "autograd"), linearize(f, x, "traced")):
            torch.testing.assert_close(fast.jvp(u), other.jvp(u), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fast.vjp(u), other.vjp(u), rtol=1e-5, atol=1e-5)
        a = spectral_norm(f, x, max_iter=30, tol=0, method="fast")
        b = spectral_norm(f, x, max_iter=30, tol=0, method="autograd")
        torch.testing.assert_close(a.sigma, b.sigma, rtol=1e-5, atol=0)


def test_samples_are_independent(device):
    model = dncnn_leaky().to(device)
    x = _input(0)
    other = x.clone()
    other[0] = _input(5)[0]
    other[2] = _input(6)[2]
    x, other = x.to(device), other.to(device)
    a = spectral_norm(model, x, max_iter=2000, tol=1e-6)
    b = spectral_norm(model, other, max_iter=2000, tol=1e-6)
    assert a.sigma[1].item() == pytest.approx(b.sigma[1].item(), rel=1e-12)
    assert not torch.allclose(a.sigma[0], b.sigma[0])


def test_tolerance_stops_early_and_flags_convergence():
    model = dncnn_leaky()
    x = _input()
    loose = spectral_norm(model, x, max_iter=500, tol=1e-2)
    assert loose.iterations < 500 and loose.converged.all()
    assert (loose.steps <= loose.iterations).all() and loose.steps.max() == loose.iterations
    fixed = spectral_norm(model, x, max_iter=7, tol=0)
    assert fixed.iterations == 7 and not fixed.converged.any() and (fixed.steps == 7).all()


def test_no_graph_no_mutation_no_global_rng():
    model = DnCNN(depth=3, width=4)
    x = torch.rand(2, 1, 8, 6)
    before = x.clone()
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    r1 = spectral_norm(model, x, max_iter=5, generator=torch.Generator().manual_seed(3))
    r2 = spectral_norm(model, x, max_iter=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, before) and torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(r1.sigma, r2.sigma)
    assert not r1.sigma.requires_grad and all(p.grad is None for p in model.parameters())


def test_training_batchnorm_is_refused():
    model = DnCNN(depth=3, width=4, batchnorm=True).train()
    with pytest.raises(LipschitzError, match=r"batch-norm in training mode.*model.eval\(\)"):
        spectral_norm(model, torch.rand(2, 1, 8, 8))
    assert spectral_norm(model.eval(), torch.rand(2, 1, 8, 8), max_iter=3).sigma.shape == (2,)


@pytest.mark.parametrize("activation", ["leaky_relu", "silu"])
@pytest.mark.parametrize("method", ["fast", "autograd"])
@pytest.mark.parametrize("reduction", ["max", "mean"])
def test_penalty_gradient_matches_the_exact_sigma2_gradient(method, reduction, activation, device):
    """With SiLU, ∂J depends on the weights through the slopes SiLU'(h) too: the fast path's
    gradient must carry that term (recorded without a graph, it is off by far more than 1e-3)."""
    model = _seeded(DnCNN(depth=3, width=4, activation=activation, negative_slope=0.2), 7)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 5, 4, dtype=torch.float64, generator=g)
    y = x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    eps = 0.999  # threshold 1 - eps below every σ², so the penalty is the σ² term itself

    model.to(device)
    penalty = fne_penalty(
        model,
        x.to(device),
        y.to(device),
        eps=eps,
        n_iter=20000,
        generator=torch.Generator().manual_seed(9),
        reduction=reduction,
        tol=1e-9,  # σ² asserted to 1e-6, its gradient to 1e-3 (measured at 1e-9: 2e-15 and 4e-10)
        method=method,
    )
    model.zero_grad()
    penalty.value.backward()
    ours = [_grad(p).cpu() for p in model.parameters()]
    model.cpu()  # the exact reference on the CPU

    x_tilde = interpolate(model, x, y, torch.Generator().manual_seed(9))  # same τ draws
    n = x_tilde[0].numel()
    q = Reflected(model)
    sigma2 = torch.stack(
        [torch.linalg.matrix_norm(torch.func.jacrev(q)(x_tilde[b : b + 1]).reshape(n, n), ord=2) ** 2 for b in range(2)]
    )
    torch.testing.assert_close(penalty.sigma2.cpu(), sigma2.detach(), rtol=1e-6, atol=0)
    model.zero_grad()
    (sigma2.max() if reduction == "max" else sigma2.mean()).backward()
    for a, b in zip(ours, (_grad(p) for p in model.parameters()), strict=True):
        assert torch.linalg.vector_norm(a - b) <= 1e-3 * torch.linalg.vector_norm(b)


def test_penalty_threshold_and_detached_inputs():
    model = DnCNN(depth=3, width=4)
    x = torch.rand(3, 1, 8, 8)
    p = fne_penalty(model, x, x + 0.01, eps=-100.0, n_iter=3, generator=torch.Generator().manual_seed(0))
    assert p.value.item() == pytest.approx(101.0)  # max{σ², 1 − ε} with 1 − ε above every σ²
    assert p.sigma2.shape == (3,) and not p.sigma2.requires_grad


def test_penalty_reuses_a_given_denoised_batch_exactly():
    model = DnCNN(depth=3, width=4)
    x = torch.rand(3, 1, 8, 8)
    y = x + 0.05
    a = fne_penalty(model, x, y, eps=0.05, n_iter=4, generator=torch.Generator().manual_seed(0))
    b = fne_penalty(model, x, y, eps=0.05, n_iter=4, generator=torch.Generator().manual_seed(0), denoised=model(y))
    assert torch.equal(a.sigma2, b.sigma2) and torch.equal(a.value, b.value)
    c = fne_penalty(model, x, y, eps=0.05, n_iter=4, generator=torch.Generator().manual_seed(0), denoised=y)
    assert not torch.equal(a.sigma2, c.sigma2)  # the given batch is really used


@pytest.mark.parametrize("method", ["fast", "autograd"])
@pytest.mark.parametrize("reflect", [False, True], ids=["J_G", "2J_G-Id"])
def test_group_mean_spectral_norm_matches_the_exact_svd_and_the_averaging_bound(method, reflect, device):
    from lipbench.restoration.groups import D4, equivariant

    model = dncnn_leaky()
    jg = equivariant(model, D4(), "mean")
    f = Reflected(jg) if reflect else jg
    x = _input()
    exact = exact_sigma(f, x)  # on the CPU
    per_g = torch.stack([exact_sigma(model, g.apply(x)) for g in D4().elements()])
    f.to(device)
    result = spectral_norm(
        f, x.to(device), max_iter=20000, tol=ITER_TOL, method=method, generator=torch.Generator().manual_seed(4)
    )
    sigma = result.sigma.cpu()
    torch.testing.assert_close(sigma, exact, rtol=1e-4, atol=0)
    if not reflect:  # ‖∂J_G(x)‖ ≤ (1/|G|) Σ_g ‖∂J(T_g x)‖ for orthogonal T_g
        assert (sigma <= per_g.mean(0) * (1 + 1e-9)).all()
        assert (sigma < per_g.mean(0) * 0.999).any()  # strictly smaller for this net


def test_random_mode_equivariant_has_no_jacobian():
    from lipbench.restoration.groups import D4, equivariant

    je = equivariant(dncnn_leaky(), D4(), "random", torch.Generator().manual_seed(0))
    with pytest.raises(LipbenchError, match="no fixed Jacobian"):
        spectral_norm(je, _input())


def test_tolerance_holds_for_clustered_singular_values():
    """Conv nets have clustered top singular values: σ creeps up by tiny steps for hundreds of
    iterations. Stopping on the last relative change alone ends ~50 iterations in, 0.7–0.9% low;
    the settled-σ test meets the tolerance."""
    torch.manual_seed(0)  # default (Kaiming) init of a small DnCNN
    net = DnCNN(depth=5, width=16).double().eval()
    x = torch.rand(2, 1, 16, 14, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    exact = exact_sigma(net, x)
    result = spectral_norm(net, x, max_iter=5000, tol=1e-4, generator=torch.Generator().manual_seed(2))
    assert result.converged.all()
    assert ((exact - result.sigma) / exact).max() < 3e-4
    naive = spectral_norm(net, x, max_iter=47, tol=0, generator=torch.Generator().manual_seed(2))
    assert ((exact - naive.sigma) / exact).min() > 5e-3  # where the naive test stops (measured)


@pytest.mark.parametrize(
    ("kernel", "padding", "dilation", "groups"),
    [(3, 1, 1, 1), (5, 2, 1, 1), (3, 0, 1, 1), (3, 2, 2, 1), ((3, 5), (1, 2), 1, 1), (3, 1, 1, 2), (3, 3, 1, 1)],
)
def test_fast_adjoint_convolution_is_the_transposed_convolution(kernel, padding, dilation, groups, device):
    from lipbench.lipschitz.linearize import _conv_transpose

    torch.manual_seed(0)  # test weights only
    conv = nn.Conv2d(4, 6, kernel, padding=padding, dilation=dilation, groups=groups, bias=False).double().to(device)
    x = torch.rand(2, 4, 11, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).to(device)
    y = torch.rand_like(conv(x))
    got = _conv_transpose(y, conv)
    ref = F.conv_transpose2d(y, conv.weight, None, 1, conv.padding, 0, groups, conv.dilation)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    assert (conv(x) * y).sum().item() == pytest.approx((x * got).sum().item(), rel=1e-12)  # ⟨Ax, y⟩ = ⟨x, Aᵀy⟩
