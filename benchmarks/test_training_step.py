"""A training step with the FNE penalty ÷ a plain step; peak memory of each.

The penalty's default estimator (10 Lanczos screening steps on the batch, then Lanczos to 1e-3 on
the 2 samples ranked highest) beside PnP-MMO's (10 power iterations, no refinement)."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICE, smoke, synced
from peak_memory import CPU_SUPPORTED, peak_extra_bytes

from lipbench.data import PatchSampler
from lipbench.steps.train import TrainConfig, initial_state, train_step

ROUNDS = {
    "rounds": 5 if DEVICE.type == "cpu" else 30,
    "iterations": 1,
    "warmup_rounds": 1 if DEVICE.type == "cpu" else 3,
}


def _setup(lam: float, small: bool = False, **estimator):
    """DnCNN-17/64 on 8 patches of 40² (``small``: the smoke run's DnCNN-5/16 on 4 patches of 16²)."""
    (depth, width, batch, patch) = (5, 16, 4, 16) if small else (17, 64, 8, 40)
    config = TrainConfig(
        model_kwargs={"depth": depth, "width": width}, batch_size=batch, patch_size=patch, lam=lam, power_iters=10,
        power_tol=0.0, probe_size=0, **estimator,
    )  # fmt: skip
    dev = DEVICE
    state = initial_state(config, dev)
    images = [torch.rand(1, 96, 96, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    return state, config, PatchSampler(images, patch, batch, generator=state.generator), dev


def test_plain_step(benchmark, request):
    benchmark.group = "training-step[dncnn17 8x40x40]"
    benchmark.extra_info["role"] = "baseline"
    benchmark.pedantic(synced(train_step), _setup(0.0, smoke(request.config)), **ROUNDS)


def test_penalty_step_10_power_iterations(benchmark, request):
    benchmark.group = "training-step[dncnn17 8x40x40]"
    benchmark.extra_info["goal"] = 10.0
    args = _setup(1e-3, smoke(request.config), penalty_solver="power", refine=0)
    benchmark.pedantic(synced(train_step), args, **ROUNDS)


def test_penalty_step_lanczos_screen_and_refine(benchmark, request):
    benchmark.group = "training-step[dncnn17 8x40x40]"
    benchmark.extra_info["goal"] = 10.0
    benchmark.pedantic(synced(train_step), _setup(1e-3, smoke(request.config)), **ROUNDS)


@pytest.mark.skipif(DEVICE.type == "cpu" and not CPU_SUPPORTED, reason="CPU peak memory needs glibc's mallinfo2")
def test_penalty_step_peak_memory(benchmark, request):
    """Peak extra memory of a penalty step ÷ a plain step (each after a warm-up step)."""
    benchmark.group = "peak-memory[dncnn17 8x40x40]"
    peaks = {}
    for name, lam in (("plain", 0.0), ("penalty", 1e-3)):
        args = _setup(lam, smoke(request.config))  # the default estimator
        peaks[name] = peak_extra_bytes(lambda args=args: train_step(*args), args[3])
    assert peaks["plain"] > 0 and peaks["penalty"] > 0
    ratio = peaks["penalty"] / peaks["plain"]
    # a ratio computed here, not from timings: the report shows it as is
    benchmark.extra_info.update(plain_bytes=peaks["plain"], penalty_bytes=peaks["penalty"], ratio=ratio, goal=3.0)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
