"""deepinv as a second reference: its Jacobian spectral-norm estimator and its PnP-PGD against lipbench's.

deepinv lives only in a separate venv (``bash benchmarks/setup-deepinv-env.sh``, then
``.bench-venv/bin/python -m pytest benchmarks/test_deepinv_reference.py``); elsewhere this module skips.
Each group's baseline is deepinv; the ratio is lipbench's time ÷ deepinv's, measured in the same run.

* ``deepinv-spectral-norm[<shape>]``: ``deepinv.loss.JacobianSpectralNorm`` vs ``lipbench.lipschitz.spectral_norm``
  on DnCNN-17 at the conftest batches, each ``SPECTRAL_ITERS`` power iterations on JᵀJ from the same start
  vector, each timed with the one forward it needs. Per iteration deepinv runs three autograd passes (the
  double-backward trick for J u: a backward recording its own graph, then a backward through it; then
  Jᵀ(J u), also recording a graph, which it never uses); lipbench one J u and one Jᵀ w (``method="auto"``:
  the fast path of recorded activation slopes, under ``no_grad``).
* ``deepinv-pnp-iteration[<size>]``: ``ITERS`` iterations of PnP-PGD on ``test_pnp_iteration.py``'s problem,
  ``x ← clamp(D(x − γ Aᵀ(A x − y)), 0, 1)`` from ``x₀ = y``: deepinv's ``PGD`` (``PnP`` prior, ``L2`` data
  fidelity, its own ``BlurFFT`` built to equal lipbench's ``Blur``) vs ``lipbench.restoration.pnp.pnp_pgd``; the same
  ``ITERS`` denoiser calls and ``ITERS`` A, Aᵀ pairs. lipbench also records ‖x_k − x_{k−1}‖ and the PSNR at
  every iteration, as in ``test_pnp_iteration.py``; deepinv computes no metrics (``compute_metrics=False``).

The plain tests check that the two compute the same things: same σ, same operator, same iterates.
"""

from __future__ import annotations

import pytest
import torch

from lipbench.data import load_kernel
from lipbench.lipschitz import spectral_norm
from lipbench.models import DnCNN
from lipbench.restoration.physics import Blur
from lipbench.restoration.pnp import pnp_pgd

deepinv = pytest.importorskip(
    "deepinv",
    reason="deepinv is not in this environment (by design: it would replace the CPU torch); "
    "to run these benchmarks: bash benchmarks/setup-deepinv-env.sh, "
    "then .bench-venv/bin/python -m pytest benchmarks/test_deepinv_reference.py",
)

ROUNDS = {"rounds": 3, "iterations": 1, "warmup_rounds": 1}
SPECTRAL_ITERS = 10
ITERS = 3  # as test_pnp_iteration.py
GAMMA = 1.99
SMALL = (2, 1, 24, 24)


@pytest.fixture(scope="module")
def dncnn17_kaiming() -> DnCNN:
    """DnCNN-17 with Kaiming-normal weights. The conftest model (PyTorch's default init) has a Jacobian
    within float rounding of the identity: σ = 1 from the first iteration, so ``spectral_norm`` with
    ``tol=0`` stops at iteration 3 (σ no longer changes) while deepinv runs all its iterations. Here
    σ ≈ 4.6 and keeps moving for about 90 iterations, so both loops run exactly ``SPECTRAL_ITERS``."""
    torch.manual_seed(0)
    model = DnCNN(depth=17, width=64).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, a=0.01, nonlinearity="leaky_relu")
    return model


def _jsn(iters: int):
    # tol only matters with verbose=True: deepinv's loop breaks early only when it also prints.
    return deepinv.loss.JacobianSpectralNorm(max_iter=iters, tol=0.0, eval_mode=True, reduction=None)


def _deepinv_sigma(jsn, model, x, seed=0):
    """deepinv's per-sample σ. It draws its start vector as ``randn_like(x)`` from the global generator:
    seed 0 gives lipbench's default start vector (``randn`` from a generator seeded 0)."""
    x = x.detach().requires_grad_(True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return jsn(model(x), x).detach()


def test_deepinv_spectral_norm(benchmark, dncnn17_kaiming, batch):
    name, x = batch
    benchmark.group = f"deepinv-spectral-norm[{name}]"
    benchmark.extra_info["role"] = "baseline"
    benchmark.extra_info["deepinv"] = deepinv.__version__
    sigma = benchmark.pedantic(_deepinv_sigma, (_jsn(SPECTRAL_ITERS), dncnn17_kaiming, x), **ROUNDS)
    assert sigma.shape == (x.shape[0],)


def test_lipbench_spectral_norm(benchmark, dncnn17_kaiming, batch):
    name, x = batch
    benchmark.group = f"deepinv-spectral-norm[{name}]"
    result = benchmark.pedantic(lambda: spectral_norm(dncnn17_kaiming, x, max_iter=SPECTRAL_ITERS, tol=0), **ROUNDS)
    assert result.iterations == SPECTRAL_ITERS  # as much work as deepinv's loop


@pytest.mark.parametrize("iters", [1, 30])
def test_same_start_vector_gives_the_same_sigma(dncnn17_kaiming, iters):
    """The same algorithm: deepinv's σ_k = √⟨u, JᵀJ u⟩ with u ← JᵀJ u/‖JᵀJ u‖ is lipbench's σ_k = ‖J u‖
    with the same update; from the same start vector they agree to float rounding after any number of
    iterations (measured ≤ 2e-7 relative), though they get J u and Jᵀ w by different means."""
    x = torch.rand(SMALL, generator=torch.Generator().manual_seed(0))
    ours = spectral_norm(dncnn17_kaiming, x, max_iter=iters, tol=0)
    assert ours.iterations == iters
    theirs = _deepinv_sigma(_jsn(iters), dncnn17_kaiming, x)
    torch.testing.assert_close(theirs, ours.sigma, rtol=1e-5, atol=0)


def test_different_start_vectors_converge_to_the_same_sigma(dncnn17_kaiming):
    """From independent start vectors, 100 iterations each: σ ≈ 4.566 and 4.618, measured 3.5e-5 relative
    apart (5e-4 with another seed, 7e-3 after 50 iterations)."""
    x = torch.rand(SMALL, generator=torch.Generator().manual_seed(0))
    ours = spectral_norm(dncnn17_kaiming, x, max_iter=100, tol=0).sigma
    theirs = _deepinv_sigma(_jsn(100), dncnn17_kaiming, x, seed=1)
    torch.testing.assert_close(theirs, ours, rtol=1e-2, atol=0)


class _NoiseLevelIgnored(torch.nn.Module):
    """deepinv's ``PnP`` prior calls ``denoiser(x, sigma)``; DnCNN takes no noise level. The clamp is
    lipbench's ``pnp_pgd(clamp=True)`` (its default), so both compute the same iterates."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self.model(x).clamp(0, 1)


def _problem(shape):
    """``test_pnp_iteration.py``'s problem (kept identical by hand), plus deepinv's operator and PGD."""
    g = torch.Generator().manual_seed(0)
    x_true = torch.rand(shape, generator=g)
    kernel = load_kernel("levin1")
    A = Blur(kernel)
    torch.manual_seed(0)
    model = DnCNN(depth=17, width=64).eval()
    y = A(x_true) + 0.01 * torch.randn(shape, generator=g)
    # lipbench's Blur is a circular cross-correlation, deepinv's BlurFFT a circular convolution:
    # the flipped kernel makes them the same operator (checked in test_same_operator_same_iterates).
    physics = deepinv.physics.BlurFFT(img_size=shape[1:], filter=kernel.flip(-2, -1)[None, None])
    pgd = deepinv.optim.optim_builder(
        iteration="PGD",
        prior=deepinv.optim.prior.PnP(denoiser=_NoiseLevelIgnored(model)),
        data_fidelity=deepinv.optim.data_fidelity.L2(),  # ½‖A x − y‖², gradient Aᵀ(A x − y)
        params_algo={"stepsize": GAMMA, "lambda": 1.0, "g_param": 0.01},  # g_param: the σ DnCNN ignores
        max_iter=ITERS,
        early_stop=False,
    )
    return model, A, y, x_true, physics, pgd


@pytest.fixture(scope="module")
def problem(request):
    """A BSD10-sized grey image (321×481) and DnCNN-17; 64×64 in smoke runs (--benchmark-disable)."""
    disabled = request.config.getoption("benchmark_disable")
    return _problem((1, 1, 64, 64) if disabled else (1, 1, 321, 481))


def _group(y):
    return f"deepinv-pnp-iteration[dncnn17 {y.shape[-2]}x{y.shape[-1]}]"


def test_deepinv_pgd(benchmark, problem):
    _, _, y, _, physics, pgd = problem
    benchmark.group = _group(y)
    benchmark.extra_info["role"] = "baseline"
    benchmark.extra_info["deepinv"] = deepinv.__version__
    benchmark.pedantic(lambda: pgd(y, physics, init=y), **ROUNDS)


def test_lipbench_pnp_pgd(benchmark, problem):
    model, A, y, x_true, _, _ = problem
    benchmark.group = _group(y)
    benchmark.pedantic(lambda: pnp_pgd(model, A, y, gamma=GAMMA, iters=ITERS, x_true=x_true), **ROUNDS)


def test_denoiser_forwards_alone(benchmark, problem):
    """The ``ITERS`` denoiser forwards both loops make: what is left of each is its overhead."""
    model, _, y, _, _, _ = problem
    benchmark.group = _group(y)

    def forwards(x):
        with torch.no_grad():
            for _ in range(ITERS):
                x = model(x)

    benchmark.pedantic(forwards, (y,), **ROUNDS)


def test_same_operator_same_iterates():
    model, A, y, x_true, physics, pgd = _problem((1, 1, 64, 64))
    torch.testing.assert_close(physics.A(x_true), A(x_true), rtol=0, atol=1e-6)
    torch.testing.assert_close(physics.A_adjoint(y), A.adjoint(y), rtol=0, atol=1e-6)
    ours = pnp_pgd(model, A, y, gamma=GAMMA, iters=ITERS).x
    theirs = pgd(y, physics, init=y)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)  # measured 1e-6
