"""Jacobian products to the paper's tolerance (1e-4): Lanczos on JᵀJ beside power iteration, the two
solvers of ``lipbench lipschitz``, on the same operators, start vectors and images.

The network is the one ``benchmarks/gpu_measure.py`` times on the GPU: DnCNN-20/64 with seeded
Kaiming-normal weights (a Jacobian far from the identity), at two noisy 96×96 BSD10 crops (power
iteration needs ~90 products there, ~200 on full images on the H100), for ‖∂J‖ and
‖∂Q‖ (Q = 2J − Id). ``extra_info`` holds the products per sample (each a ``J u`` and a ``Jᵀ w``) and
the σ each solver returns; ``docs/performance.md`` divides the products and compares the σ. With
``--benchmark-disable`` (the CI smoke run) a DnCNN-5/16 on 24×24 crops keeps it to seconds.
"""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICE, synced

from lipbench.data import load_images
from lipbench.lipschitz import linearize
from lipbench.lipschitz.lanczos import lanczos
from lipbench.lipschitz.linearize import ReflectedLinearization
from lipbench.lipschitz.power import power_iteration
from lipbench.models import DnCNN

TOL, MAX_ITER = 1e-4, 500  # config/paper.yaml's lipschitz section
SOLVERS = {"power": power_iteration, "lanczos": lanczos}


@pytest.fixture(scope="module")
def operators(request) -> tuple[str, torch.Tensor, dict]:
    smoke = request.config.getoption("benchmark_disable")
    depth, width, crop = (5, 16, 24) if smoke else (20, 64, 96)
    torch.manual_seed(0)
    model = DnCNN(depth=depth, width=width)
    for m in model.modules():  # as gpu_measure.precision_effects: ∂J far from the identity
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, a=0.01, nonlinearity="leaky_relu")
    model = model.eval().to(DEVICE)
    x = torch.stack([im[..., :crop, :crop] for im in load_images("bsd10")[:2]])
    x = (x + 0.009 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).to(DEVICE)
    with torch.no_grad():
        lin = linearize(model, x)
    return f"dncnn{depth}-{width} 2x{crop}x{crop}", x, {"J": lin, "Q": ReflectedLinearization(lin, x)}


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_products_to_tolerance(benchmark, operators, solver):
    name, x, ops = operators
    benchmark.group = f"spectral-solvers[{name}]"
    if solver == "power":
        benchmark.extra_info["role"] = "baseline"

    def solve():
        return {op: SOLVERS[solver](lin, x, max_iter=MAX_ITER, tol=TOL, generator=torch.Generator().manual_seed(1))
                for op, lin in ops.items()}  # fmt: skip

    # one round: the products are deterministic, and a power-iteration round takes minutes on a CPU
    results = benchmark.pedantic(synced(solve), rounds=1 if DEVICE.type == "cpu" else 3, iterations=1)
    for op, res in results.items():
        assert res.converged.all(), f"{solver} did not reach tol {TOL} on ‖∂{op}‖ in {MAX_ITER} products"
        benchmark.extra_info[f"{op}_products"] = res.steps.tolist()
        benchmark.extra_info[f"{op}_sigma"] = res.sigma.double().cpu().tolist()
