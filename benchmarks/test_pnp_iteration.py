"""PnP iterations ÷ as many denoiser forwards: the data step, group transforms and records must
be negligible next to the denoiser (goal ≤ 1.05; the group mean runs |G| forwards, goal ≤ 8.4)."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICE, synced

from lipbench.data import load_kernel
from lipbench.models import DnCNN
from lipbench.restoration.groups import D4, equivariant
from lipbench.restoration.physics import Blur
from lipbench.restoration.pnp import pnp_pgd

ITERS = 3
ROUNDS = {
    "rounds": 3 if DEVICE.type == "cpu" else 30,
    "iterations": 1,
    "warmup_rounds": 1 if DEVICE.type == "cpu" else 3,
}


@pytest.fixture(scope="module")
def problem(request):
    """A BSD10-sized grey image (321×481) and DnCNN-17; 64×64 in smoke runs (--benchmark-disable)."""
    disabled = request.config.getoption("benchmark_disable")
    shape = (1, 1, 64, 64) if disabled else (1, 1, 321, 481)
    g = torch.Generator().manual_seed(0)
    x_true = torch.rand(shape, generator=g)
    A = Blur(load_kernel("levin1"))
    torch.manual_seed(0)
    model = DnCNN(depth=17, width=64).eval().to(DEVICE)
    y = A(x_true) + 0.01 * torch.randn(shape, generator=g)
    return model, A, y.to(DEVICE), x_true.to(DEVICE)


def _forwards(model, y):
    with torch.no_grad():
        for _ in range(ITERS):
            y = model(y)


def test_denoiser_forwards(benchmark, problem):
    model, _, y, _ = problem
    benchmark.group = "pnp-iteration[dncnn17 321x481]"
    benchmark.extra_info["role"] = "baseline"
    benchmark.pedantic(synced(_forwards), (model, y), **ROUNDS)


@pytest.mark.parametrize("mode", ["standard", "equivariant-random", "equivariant-mean"])
def test_pnp_iterations(benchmark, problem, mode):
    model, A, y, x_true = problem
    benchmark.group = "pnp-iteration[dncnn17 321x481]"
    benchmark.extra_info["goal"] = 8.4 if mode == "equivariant-mean" else 1.05
    denoiser = model
    if mode != "standard":
        g = torch.Generator().manual_seed(0) if mode == "equivariant-random" else None
        denoiser = equivariant(model, D4(), mode.removeprefix("equivariant-"), g)
    benchmark.pedantic(synced(lambda: pnp_pgd(denoiser, A, y, gamma=1.99, iters=ITERS, x_true=x_true)), **ROUNDS)
