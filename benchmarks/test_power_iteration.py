"""One power iteration (J u then Jᵀ w) ÷ one forward+backward of DnCNN-17 on the same batch."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICE, synced

from lipbench.lipschitz import linearize

ROUNDS = {
    "rounds": 5 if DEVICE.type == "cpu" else 30,
    "iterations": 1,
    "warmup_rounds": 1 if DEVICE.type == "cpu" else 3,
}


def forward_backward(model, x):
    model.zero_grad(set_to_none=True)
    model(x).square().mean().backward()


class DoubleBackward:
    """The talk's trick: J u as the gradient, w.r.t. a dummy w, of ⟨Jᵀ w, u⟩ (graph kept once)."""

    def __init__(self, f, x):
        self.x = x.detach().requires_grad_(True)
        self.out = f(self.x)

    def jvp(self, u):
        w = torch.zeros_like(self.out, requires_grad=True)
        (jtw,) = torch.autograd.grad(self.out, self.x, w, create_graph=True, retain_graph=True)
        (ju,) = torch.autograd.grad(jtw, w, u, retain_graph=True)
        return ju

    def vjp(self, w):
        return torch.autograd.grad(self.out, self.x, w, retain_graph=True)[0]


def _power_iteration(lin, u):
    z = lin.vjp(lin.jvp(u))
    return z / z.norm()


def test_baseline_forward_backward(benchmark, dncnn17, batch):
    name, x = batch
    benchmark.group = f"power-iteration[{name}]"
    benchmark.extra_info["role"] = "baseline"
    benchmark.pedantic(synced(forward_backward), (dncnn17, x), **ROUNDS)


@pytest.mark.parametrize(("method", "goal"), [("fast", 1.0), ("autograd", 1.4), ("traced", None)])
def test_linearization(benchmark, dncnn17, batch, method, goal):
    name, x = batch
    benchmark.group = f"power-iteration[{name}]"
    if goal is not None:
        benchmark.extra_info["goal"] = goal
    lin = linearize(dncnn17, x, method)
    u = torch.randn_like(x)
    with torch.no_grad():
        benchmark.pedantic(synced(_power_iteration), (lin, u), **ROUNDS)


def test_traced_path_setup(benchmark, dncnn17, batch):
    """The one-off tracing of the traced path (once per spectral-norm call)."""
    name, x = batch
    benchmark.group = f"power-iteration[{name}]"
    benchmark.pedantic(synced(linearize), (dncnn17, x, "traced"), rounds=3, iterations=1)


def test_double_backward_reference(benchmark, dncnn17, batch):
    name, x = batch
    benchmark.group = f"power-iteration[{name}]"
    lin = DoubleBackward(dncnn17, x)
    u = torch.randn_like(x)
    benchmark.pedantic(synced(_power_iteration), (lin, u), **ROUNDS)


def test_fast_path_setup(benchmark, dncnn17, batch):
    """The one-off forward that records the activation slopes (once per spectral-norm call)."""
    name, x = batch
    benchmark.group = f"power-iteration[{name}]"
    benchmark.pedantic(synced(linearize), (dncnn17, x, "fast"), **ROUNDS)
