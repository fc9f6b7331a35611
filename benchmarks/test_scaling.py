"""How each stage's cost grows: denoiser forward, power iteration and PnP iteration with the image
size (pixels) and the batch (images × kernels in one PnP job), a training step with the batch.
Three sizes per axis; ``benchmarks/performance_page.py`` fits cost ∝ x^α by least squares on logs.

A smaller DnCNN (8 layers, 32 channels) keeps the run short; the exponents, not the times, are the
result. Smoke runs (``--benchmark-disable``) use toy sizes.
"""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICE, synced

from lipbench.data import PatchSampler, load_kernel
from lipbench.lipschitz import linearize
from lipbench.models import DnCNN
from lipbench.restoration.physics import Blur
from lipbench.restoration.pnp import pnp_pgd
from lipbench.steps.train import TrainConfig, initial_state, train_step

ROUNDS = {"rounds": 7, "iterations": 1, "warmup_rounds": 2}
SIDES = (128, 256, 512)  # pixels: 16384, 65536, 262144
BATCHES = (1, 2, 4)  # at 256 × 256
TRAIN_BATCHES = (4, 8, 16)
KERNELS = ("levin1", "levin2", "levin3", "levin4")


@pytest.fixture(scope="module")
def model() -> DnCNN:
    torch.manual_seed(0)  # benchmark weights only
    return DnCNN(depth=8, width=32).eval().to(DEVICE)


def _shape(request, side: int, batch: int) -> tuple[int, int, int, int]:
    small = request.config.getoption("benchmark_disable")
    return (batch, 1, 16, 16) if small else (batch, 1, side, side)


def _stage(benchmark, stage: str, axis: str, x: int) -> None:
    benchmark.group = f"scaling[{stage} vs {axis}]"
    benchmark.extra_info.update(stage=stage, axis=axis, x=x)


CASES = [("pixels", side, 1) for side in SIDES] + [("batch", 256, b) for b in BATCHES]


@pytest.mark.parametrize(("axis", "side", "batch"), CASES)
def test_forward(benchmark, request, model, axis, side, batch):
    x = torch.rand(_shape(request, side, batch), generator=torch.Generator().manual_seed(0)).to(DEVICE)
    _stage(benchmark, "denoiser forward", axis, side * side if axis == "pixels" else batch)
    with torch.no_grad():
        benchmark.pedantic(synced(model), (x,), **ROUNDS)


@pytest.mark.parametrize(("axis", "side", "batch"), CASES)
def test_power_iteration(benchmark, request, model, axis, side, batch):
    x = torch.rand(_shape(request, side, batch), generator=torch.Generator().manual_seed(0)).to(DEVICE)
    _stage(benchmark, "power iteration", axis, side * side if axis == "pixels" else batch)
    lin = linearize(model, x, "fast")
    u = torch.randn_like(x)
    with torch.no_grad():
        benchmark.pedantic(synced(lambda: lin.vjp(lin.jvp(u))), **ROUNDS)


@pytest.mark.parametrize(("axis", "side", "batch"), CASES)
def test_pnp_iteration(benchmark, request, model, axis, side, batch):
    shape = _shape(request, side, batch)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    A = Blur([load_kernel(k) for k in KERNELS[:batch]])
    y = (A(x) + 0.01 * torch.randn(shape, generator=torch.Generator().manual_seed(1))).to(DEVICE)
    _stage(benchmark, "PnP iteration", axis, side * side if axis == "pixels" else batch)
    benchmark.pedantic(synced(lambda: pnp_pgd(model, A, y, gamma=1.99, iters=1, x_true=x.to(DEVICE))), **ROUNDS)


@pytest.mark.parametrize("lam", [0.0, 1e-3], ids=["plain", "penalty"])
@pytest.mark.parametrize("batch", TRAIN_BATCHES)
def test_training_step(benchmark, request, batch, lam):
    small = request.config.getoption("benchmark_disable")
    config = TrainConfig(model_kwargs={"depth": 8, "width": 32}, batch_size=batch, patch_size=16 if small else 40,
                         lam=lam, power_iters=5, power_tol=0.0)  # fmt: skip
    state = initial_state(config, DEVICE)
    images = [torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    sampler = PatchSampler(images, config.patch_size, batch, generator=state.generator)
    _stage(benchmark, f"training step ({'penalty' if lam else 'plain'})", "batch", batch)
    benchmark.pedantic(synced(train_step), (state, config, sampler, DEVICE), **ROUNDS)
