"""CertifiedDenoiser: Q = 2J − Id is 1-Lipschitz by construction, checked against dense Jacobians."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from checkpoints import save_model
from torch import nn

from lipbench.lipschitz import spectral_norm, supports_fast_path
from lipbench.lipschitz.linearize import Reflected
from lipbench.models import CertifiedDenoiser, build, certified, load_model
from lipbench.models.certified import AOLConv, SLLBlock, aol_scale, gram_kernel, sll_scale
from lipbench.restoration.physics import Blur
from lipbench.restoration.pnp import pnp_pgd

TOL = 1e-10


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These tensors are tiny: with two threads on a busy machine a 4×4×3×3 convolution took 6 ms
    (OpenMP waits), with one 0.02 ms."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def dense(f, x: torch.Tensor) -> torch.Tensor:
    """The full Jacobian of ``f`` at the single sample ``x`` (outputs × inputs): ``f`` acts on each
    sample of a batch alone, so one backward through a batch of copies gives every row."""
    m = f(x).numel()
    copies = x.repeat(m, *[1] * (x.ndim - 1)).requires_grad_()
    (rows,) = torch.autograd.grad(f(copies).flatten(1).diagonal().sum(), copies)
    return rows.flatten(1)


def sigma_max(f, x: torch.Tensor) -> float:
    return torch.linalg.svdvals(dense(f, x))[0].item()


def conv_matrix(weight: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The dense matrix of ``F.conv2d(·, weight, padding=1)`` on ``h×w`` images."""
    x = torch.zeros(1, weight.shape[1], h, w, dtype=weight.dtype)
    return dense(lambda v: F.conv2d(v, weight, padding=1), x)


def randomised(model: nn.Module, seed: int, std: float = 0.5) -> nn.Module:
    """Every parameter (weights, biases, log q, gates) drawn from N(0, std²): far from the init."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            nn.init.normal_(p, std=std)
    return model


def perron_tight(block: SLLBlock, seed: int) -> SLLBlock:
    """Non-negative kernel, q = Perron vector of A = Σ_s |G(s)|, gate ≈ 1, all units active: then
    every t_i equals ρ(A) = ‖C Cᵀ‖ on the infinite grid, so the block is nearly tight (its Jacobian
    I − 2 Cᵀ T⁻¹ C has an eigenvalue near −1) and halving T must break the bound."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        block.weight.copy_(torch.rand(block.weight.shape, generator=g, dtype=block.weight.dtype))
        a = gram_kernel(block.weight).abs().sum((-2, -1))
        block.log_q.copy_(torch.linalg.eigh(a)[1][:, -1].abs().log())
        block.bias.fill_(100.0)
        block.gate.fill_(40.0)
    return block


def test_gram_kernel_is_the_kernel_of_c_ct():
    torch.manual_seed(0)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    h = w = 9
    c = conv_matrix(weight, h, w)
    m = (c @ c.T).reshape(3, h, w, 3, h, w)
    g = gram_kernel(weight)
    assert g.shape == (3, 3, 5, 5)
    p = 4  # an interior pixel: (C Cᵀ)_{(i, p), (j, p + s)} = G[i, j, s + 2]
    expected = m[:, p, p, :, p - 2 : p + 3, p - 2 : p + 3]
    torch.testing.assert_close(g, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (6, 6)])
def test_t_dominates_the_zero_padded_gram_at_every_size(shape):
    torch.manual_seed(1)
    weight = torch.randn(4, 4, 3, 3, dtype=torch.float64)
    log_q = torch.randn(4, dtype=torch.float64)
    c = conv_matrix(weight, *shape)
    t = sll_scale(weight, log_q).repeat_interleave(shape[0] * shape[1])
    assert torch.linalg.eigvalsh(torch.diag(t) - c @ c.T).min() >= -TOL


def test_t_and_d_on_hand_computed_kernels():
    """Centre-only kernels, so G is the matrix product: C = [[1, 0], [1, 0]] reads input channel 0
    into both hidden channels, C Cᵀ = [[1, 1], [1, 1]] and t_i = Σ_j q_j / q_i (CᵀC = diag(2, 0) would
    give t = (2, 0), below C Cᵀ)."""
    weight = torch.zeros(2, 2, 3, 3, dtype=torch.float64)
    weight[:, 0, 1, 1] = 1.0
    log_q = torch.tensor([0.0, 0.7], dtype=torch.float64)
    q = log_q.exp()
    expected = torch.stack([1 + q[1] / q[0], 1 + q[0] / q[1]])
    torch.testing.assert_close(sll_scale(weight, log_q), expected, rtol=1e-12, atol=0)
    c = conv_matrix(weight, 4, 4)
    assert torch.linalg.eigvalsh(torch.diag(expected.repeat_interleave(16)) - c @ c.T).min() >= -TOL
    row = torch.zeros(1, 2, 3, 3, dtype=torch.float64)  # W = [3, 4]: WᵀW = [[9, 12], [12, 16]], W Wᵀ = 25
    row[0, :, 1, 1] = torch.tensor([3.0, 4.0])
    torch.testing.assert_close(aol_scale(row, "in"), torch.tensor([21.0, 28.0], dtype=torch.float64).rsqrt())
    torch.testing.assert_close(aol_scale(row, "out"), torch.tensor([0.2], dtype=torch.float64))


def test_aol_rescaled_convolutions_have_norm_at_most_one_nearly_tight():
    torch.manual_seed(2)
    for side, (cin, cout) in (("in", (1, 4)), ("out", (4, 1)), ("in", (3, 4)), ("out", (4, 3))):
        conv = AOLConv(cin, cout, side).double()
        with torch.no_grad():
            conv.weight.normal_()
        w = conv.rescaled_weight()
        assert torch.linalg.svdvals(conv_matrix(w, 7, 7))[0] <= 1 + TOL
        with torch.no_grad():  # non-negative: the bound is the DC gain, approached on large grids
            conv.weight.uniform_()
        w = conv.rescaled_weight()
        assert 0.9 <= torch.linalg.svdvals(conv_matrix(w, 8, 8))[0] <= 1 + TOL
    d = aol_scale(torch.ones(1, 1, 3, 3, dtype=torch.float64), "in")  # G = the 5×5 autocorrelation of ones
    torch.testing.assert_close(d, torch.tensor([1 / 9.0], dtype=torch.float64))


def halve_t(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every SLL block use t / 2, which voids T ⪰ C Cᵀ (the mutation the bounds must expose)."""
    real = certified.sll_scale
    monkeypatch.setattr(certified, "sll_scale", lambda weight, log_q: real(weight, log_q) / 2)


@pytest.mark.parametrize("activation", [nn.ReLU(), nn.LeakyReLU(0.3)])
def test_sll_block_is_1_lipschitz_and_the_bound_is_tight(activation, monkeypatch):
    block = randomised(SLLBlock(3, activation).double(), seed=3)
    for _ in range(3):
        assert sigma_max(block, torch.randn(1, 3, 6, 6, dtype=torch.float64)) <= 1 + TOL
    block = perron_tight(block, seed=3)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    assert sigma_max(block, x) <= 1 + TOL
    halve_t(monkeypatch)  # t / 2: the guarantee is void and the tight block shows it
    assert sigma_max(block, x) > 2


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_q_and_j_dense_jacobians_random_weights(activation, seed):
    model = randomised(CertifiedDenoiser(width=4, depth=3, activation=activation, negative_slope=0.2), seed).double()
    model.eval()
    for _ in range(3):
        x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
        assert sigma_max(model.reflected, x) <= 1 + TOL
        assert sigma_max(model, x) <= 1 + TOL
    a, b = torch.randn(2, 5, 1, 8, 8, dtype=torch.float64)  # J firmly nonexpansive on random pairs
    ja, jb = model(a), model(b)
    lhs = (ja - jb).flatten(1).square().sum(1)
    rhs = ((ja - jb) * (a - b)).flatten(1).sum(1)
    assert (lhs <= rhs + TOL).all()
    assert (lhs > 0).all()


def test_deeper_and_multichannel_q_is_1_lipschitz():
    model = randomised(CertifiedDenoiser(channels=2, width=4, depth=5, activation="leaky_relu"), seed=4).double()
    for _ in range(2):
        assert sigma_max(model.reflected, torch.randn(1, 2, 5, 6, dtype=torch.float64)) <= 1 + TOL
    model = randomised(CertifiedDenoiser(width=3, depth=3, bias=False), seed=4).double()
    assert not any("bias" in name for name, _ in model.named_parameters())
    assert sigma_max(model.reflected, torch.randn(1, 1, 6, 6, dtype=torch.float64)) <= 1 + TOL
    linear = randomised(CertifiedDenoiser(width=3, depth=2), seed=4).double()  # depth 2: Q = project ∘ lift
    assert len(linear.blocks) == 0
    assert sigma_max(linear.reflected, torch.randn(1, 1, 6, 6, dtype=torch.float64)) <= 1 + TOL


def test_tight_network_hits_one_and_a_halved_t_exceeds_it(monkeypatch):
    """Delta kernels and σ = LeakyReLU(1) = Id: each block is I − 2I = −I, so Q = Id (two blocks;
    up to t's EPS); with t / 2 each block is −3 I and σ_max = 9. A factor error anywhere in the chain would show."""
    model = CertifiedDenoiser(width=3, depth=4, activation="leaky_relu", negative_slope=1.0).double()
    with torch.no_grad():
        for block in model.blocks:
            block.weight.zero_()
            block.weight[torch.arange(3), torch.arange(3), 1, 1] = 0.7
            block.gate.fill_(40.0)
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(dense(model.reflected, x), torch.eye(36, dtype=torch.float64), rtol=0, atol=1e-10)
    halve_t(monkeypatch)
    assert sigma_max(model.reflected, x) == pytest.approx(9.0, rel=1e-9)


def test_initialisation_is_close_to_the_identity_and_trains():
    torch.manual_seed(5)
    model = CertifiedDenoiser(depth=6, width=8)
    x = torch.rand(2, 1, 16, 16)
    q = model.reflected(x)
    assert (q - x).norm() <= 0.1 * x.norm()  # J = (x + Q x)/2 ≈ x: training learns the residual
    (model(x) - x).square().mean().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert grads.isfinite().all() and grads.abs().max() < 10  # no EPS^{-1/2} blow-up in the AOL scalings
    assert sigma_max(model.double().reflected, torch.rand(1, 1, 6, 6, dtype=torch.float64)) <= 1 + TOL


def test_pnp_pgd_with_the_certified_denoiser_is_monotone():
    model = randomised(CertifiedDenoiser(width=4, depth=4), seed=6).double().eval()
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64)
    r = torch.arange(5, dtype=torch.float64) - 2
    kernel = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 2)
    A = Blur(kernel / kernel.sum())
    y = A(x) + 0.01 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    result = pnp_pgd(model, A, y, gamma=1.99, iters=60, clamp=True)
    assert result.x.dtype == torch.float64
    # c_k = ‖x_{k+1} − x_k‖ / ‖x_0‖ is computed from float64 iterates of norm ‖x‖ (x_0 = y): each pixel
    # of x_k carries a rounding error of a few ulps, so the computed difference is known only to about
    # eps · ‖x‖ in absolute terms. Once c_k reaches that level (~1e-16 after ~55 of the 60 iterations here)
    # it moves by rounding alone (measured: 1.09e-16 → 1.10e-16, 1.32e-16 → 1.67e-16), so the relative
    # check gets an absolute floor of 4 eps · ‖x‖ / ‖x_0‖ (~4e-16): monotone above the rounding level.
    eps = torch.finfo(torch.float64).eps
    norms = torch.linalg.vector_norm(result.x.flatten(1), dim=1) / torch.linalg.vector_norm(y.flatten(1), dim=1)
    for sample, rows in result.records.groupby("sample"):
        c = rows.sort_values("iteration")["c"].to_numpy()
        assert c[0] > 0
        floor = 4 * eps * norms[sample].item()
        assert (c[1:] - c[:-1] <= 1e-12 * c[:-1] + floor).all()  # ‖x_{k+1} − x_k‖ never grows: T nonexpansive


def test_registry_and_checkpoint_round_trip(tmp_path):
    model = build("certified", depth=3, width=8)
    assert isinstance(model, CertifiedDenoiser) and len(model.blocks) == 1
    randomised(model, seed=7)
    path = tmp_path / "certified.pt"
    save_model(path, model, {"name": "certified", "depth": 3, "width": 8})
    loaded = load_model(path)
    x = torch.rand(2, 1, 12, 12)
    assert torch.equal(loaded(x), model.eval()(x))


def test_spectral_norm_of_reflected_matches_the_dense_svd():
    """Not a conv stack: method "auto" takes the autograd path (the first forward-mode call of a
    process costs seconds of set-up)."""
    model = randomised(CertifiedDenoiser(width=4, depth=3), seed=8).double().eval()
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    exact = torch.linalg.svdvals(dense(Reflected(model), x))[0].item()
    assert exact <= 1 + TOL
    assert not supports_fast_path(Reflected(model))
    for solver, tol in (("power", 1e-5), ("lanczos", 1e-9)):
        result = spectral_norm(Reflected(model), x, max_iter=500, tol=tol, solver=solver)
        assert result.converged.all()
        assert result.sigma.item() == pytest.approx(exact, rel=10 * tol)


def test_clamp_in_eval_mode_only():
    model = randomised(CertifiedDenoiser(width=4, depth=3, clamp=True), seed=9)
    x = 3 * torch.randn(1, 1, 6, 6)
    assert not model.train().clamps and model.eval().clamps
    out = model(x)
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out, ((x.clamp(0, 1) + model.reflected(x.clamp(0, 1))) / 2).clamp(0, 1))
    model.train()
    torch.testing.assert_close(model(x), (x + model.reflected(x)) / 2)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"activation": "tanh"}, "activation"),
        ({"depth": 1}, "depth"),
        ({"channels": 0}, "channels"),
        ({"channels": 3, "width": 2}, "width"),
        ({"activation": "leaky_relu", "negative_slope": 1.5}, "negative_slope"),
    ],
)
def test_invalid_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CertifiedDenoiser(**kwargs)
