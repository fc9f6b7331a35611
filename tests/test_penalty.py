"""The Lanczos spectral norm and the penalty's screen + refine estimator, against exact SVDs."""

from __future__ import annotations

import itertools

import pytest
import torch
from test_lipschitz import NETS, _grad, _input, _seeded, exact_sigma

from lipbench.lipschitz import LipschitzError, Reflected, fne_penalty, interpolate, linearize, spectral_norm
from lipbench.lipschitz.lanczos import lanczos
from lipbench.lipschitz.penalty import top_singular
from lipbench.lipschitz.power import power_iteration
from lipbench.models import DnCNN


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("method", ["auto", "autograd"])
def test_lanczos_matches_the_exact_svd(name, method, device):
    f, x = NETS[name]().to(device), _input().to(device)
    res = spectral_norm(f, x, max_iter=100, tol=1e-8, solver="lanczos", method=method)
    torch.testing.assert_close(res.sigma.cpu(), exact_sigma(f.cpu(), x.cpu()), rtol=1e-7, atol=0)
    assert res.converged.all()
    # the vector is a top right singular vector: ‖J u‖ = σ
    ju = linearize(f.to(device), x, method).jvp(res.vector)
    torch.testing.assert_close(torch.linalg.vector_norm(ju.flatten(1), dim=1), res.sigma, rtol=1e-7, atol=0)


@pytest.mark.parametrize("name", ["dncnn", "tanh"])
def test_lanczos_never_overestimates_and_rises_with_every_step(name):
    f, x = NETS[name](), _input(3)
    exact = exact_sigma(f, x)
    lin = linearize(f, x)
    sigmas = [
        lanczos(lin, x, max_iter=k, tol=0.0, generator=torch.Generator().manual_seed(1)).sigma for k in range(1, 12)
    ]
    for s in sigmas:
        assert (s <= exact * (1 + 1e-12)).all()  # a Ritz value: below σ₁ (Cauchy interlacing)
    for a, b in itertools.pairwise(sigmas):
        assert (b >= a * (1 - 1e-12)).all()  # a larger Krylov space never loses ground


def test_lanczos_needs_fewer_products_than_power_iteration():
    """At equal Jacobian products, Lanczos is far closer to σ₁ on a net with clustered top values."""
    f = _seeded(DnCNN(depth=5, width=8, negative_slope=0.1), 4)
    x = torch.rand(4, 1, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    exact = exact_sigma(f, x).detach()
    lin = linearize(f, x)
    g = torch.Generator().manual_seed(0)
    for k in (5, 10, 20):
        lz = 1 - lanczos(lin, x, max_iter=k, tol=0.0, generator=g.manual_seed(0)).sigma / exact
        pw = 1 - power_iteration(lin, x, max_iter=k, tol=0.0, generator=g.manual_seed(0)).sigma / exact
        assert (lz >= -1e-12).all() and (lz <= pw).all(), (k, lz, pw)
        if k >= 10:  # measured: 10 steps 7e-6 vs 0.11 worst, 20 steps 2e-15 vs 6e-3
            assert lz.max() < pw.max() / 100, (k, lz, pw)


def test_lanczos_stops_per_sample_at_its_tolerance():
    f, x = NETS["dncnn"](), torch.rand(5, 1, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    exact = exact_sigma(f, x)
    res = spectral_norm(f, x, max_iter=200, tol=1e-5, solver="lanczos", generator=torch.Generator().manual_seed(3))
    assert res.converged.all() and (res.steps < 81).all()  # before the Krylov space is exhausted
    assert ((1 - res.sigma / exact) <= 1e-5).all()


def test_unknown_solver_is_refused():
    with pytest.raises(LipschitzError, match="solver must be one of"):
        spectral_norm(NETS["linear"](), _input(), solver="arnoldi")


def _batch(seed: int = 0, n: int = 6) -> tuple[torch.nn.Module, torch.Tensor]:
    model = _seeded(DnCNN(depth=4, width=6, negative_slope=0.2), 11)
    return model, torch.rand(n, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("solver", ["power", "lanczos"])
def test_refinement_reaches_tolerance_on_the_worst_samples(solver):
    model, x = _batch()
    exact = exact_sigma(Reflected(model), x)
    est, steps = top_singular(
        model, x, n_iter=2, tol=0.0, generator=torch.Generator().manual_seed(0), solver=solver, refine=2,
        refine_iters=64, refine_tol=1e-7,
    )  # fmt: skip
    screen, _ = top_singular(model, x, n_iter=2, tol=0.0, generator=torch.Generator().manual_seed(0), solver=solver)
    worst = torch.topk(screen.sigma, 2).indices
    assert steps > 0
    assert (est.sigma <= exact * (1 + 1e-12)).all()  # never above, refined or not
    torch.testing.assert_close(est.sigma[worst], exact[worst], rtol=1e-7, atol=0)
    others = torch.ones(len(x), dtype=torch.bool)
    others[worst] = False
    assert torch.equal(est.sigma[others], screen.sigma[others])  # the rest keep their screen value


def test_a_longer_screen_finds_the_worst_sample_that_two_steps_miss():
    """The top singular values of this batch lie within 8 %: two power steps rank the wrong sample
    first, ten Lanczos steps rank it right, and the refined batch max is then exact."""
    model, x = _batch()
    exact = exact_sigma(Reflected(model), x).detach()
    g = torch.Generator()
    two, _ = top_singular(model, x, n_iter=2, tol=0.0, generator=g.manual_seed(0), solver="power", refine=2,
                          refine_iters=64, refine_tol=1e-7)  # fmt: skip
    assert two.sigma.max() < exact.max() * (1 - 1e-3)  # the worst sample was not refined
    ten, _ = top_singular(model, x, n_iter=10, tol=0.0, generator=g.manual_seed(0), refine=2, refine_iters=64,
                          refine_tol=1e-7)  # fmt: skip
    assert ten.sigma.max() == pytest.approx(exact.max().item(), rel=1e-7)


def test_refining_more_samples_than_the_batch_refines_them_all():
    model, x = _batch(1, n=3)
    est, _ = top_singular(model, x, n_iter=1, tol=0.0, generator=torch.Generator().manual_seed(0), refine=10,
                          refine_iters=64, refine_tol=1e-8)  # fmt: skip
    torch.testing.assert_close(est.sigma, exact_sigma(Reflected(model), x), rtol=1e-7, atol=0)


def test_penalty_gradient_is_taken_at_the_refined_vector():
    """Two coarse screening steps, then refinement: the weight gradient of the max-reduced penalty
    equals the exact gradient of max_b ‖∂Q(x̃_b)‖² (dense Jacobians, float64)."""
    model, x = _batch(2, n=4)
    y = x + 0.05 * torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    penalty = fne_penalty(
        model, x, y, eps=0.999, n_iter=2, tol=0.0, generator=torch.Generator().manual_seed(9), refine=4,
        refine_iters=64, refine_tol=1e-9,
    )  # fmt: skip
    model.zero_grad()
    penalty.value.backward()
    ours = [_grad(p) for p in model.parameters()]
    x_tilde = interpolate(model, x, y, torch.Generator().manual_seed(9))  # same τ draws
    q, n = Reflected(model), x_tilde[0].numel()
    sigma2 = torch.stack(
        [torch.linalg.matrix_norm(torch.func.jacrev(q)(x_tilde[b : b + 1]).reshape(n, n), ord=2) ** 2 for b in range(4)]
    )
    torch.testing.assert_close(penalty.sigma2, sigma2.detach(), rtol=1e-7, atol=0)
    model.zero_grad()
    sigma2.max().backward()
    for a, b in zip(ours, (_grad(p) for p in model.parameters()), strict=True):
        assert torch.linalg.vector_norm(a - b) <= 1e-4 * torch.linalg.vector_norm(b)
    # the same screen without refinement is visibly off
    coarse = fne_penalty(model, x, y, eps=0.999, n_iter=2, tol=0.0, generator=torch.Generator().manual_seed(9))
    assert coarse.sigma2.max() < sigma2.max() * (1 - 1e-4)


def test_a_non_finite_jacobian_gives_nan_not_an_exception():
    """Diverged training (NaN weights) must reach the loss check as NaN, not crash the eigensolver."""
    model, x = _batch(3, n=3)
    with torch.no_grad():
        model.body[2].weight[0, 0, 1, 1] = float("nan")
    res = spectral_norm(Reflected(model), x, max_iter=20, tol=1e-6, solver="lanczos")
    assert torch.isnan(res.sigma).all() and not res.converged.any() and res.iterations == 1
