"""Shared benchmark fixtures and the ratio report.

Every benchmark belongs to a group with one baseline (``extra_info["role"] == "baseline"``);
the report divides each benchmark's median by its group baseline's median, measured in the same
run, and compares it with the goal in ``extra_info["goal"]`` where one is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch

from lipbench.models import DnCNN
from lipbench.plumbing.precision import tf32

SHAPES = {"8x40x40": (8, 1, 40, 40), "1x256x256": (1, 1, 256, 256)}
# ``--benchmark-disable`` (the CI smoke run, which only checks that every benchmark still runs):
# these small inputs instead, so the whole suite takes about a minute
SMOKE_SHAPES = {"8x40x40": (2, 1, 16, 16), "1x256x256": (1, 1, 24, 24)}
# The device the benchmarks run on: cpu by default, cuda in benchmarks/gpu.sh.
DEVICE = torch.device(os.environ.get("LIPBENCH_BENCH_DEVICE", "cpu"))


def synced(fn: Callable[..., object]) -> Callable[..., object]:
    """``fn`` followed by a device synchronisation, so a timer around it measures the device's work."""
    if DEVICE.type != "cuda":
        return fn

    def call(*args, **kwargs):
        out = fn(*args, **kwargs)
        torch.cuda.synchronize(DEVICE)
        return out

    return call


@pytest.fixture(scope="session", autouse=True)
def _full_float32():
    """Benchmarks compare code paths, not precisions: TF32 off on CUDA (lipbench's default for
    spectral norms and PnP); the training benchmarks set their own (TrainConfig.tf32)."""
    with tf32(False):
        yield


@pytest.fixture(scope="session")
def dncnn17() -> DnCNN:
    torch.manual_seed(0)
    return DnCNN(depth=17, width=64).eval().to(DEVICE)


def smoke(config: pytest.Config) -> bool:
    """Whether this is the smoke run (``--benchmark-disable``): small inputs, nothing timed."""
    return bool(config.getoption("benchmark_disable"))


@pytest.fixture(params=list(SHAPES), scope="session")
def batch(request) -> tuple[str, torch.Tensor]:
    shape = (SMOKE_SHAPES if smoke(request.config) else SHAPES)[request.param]
    return request.param, torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(DEVICE)


def ratios(benchmarks) -> list[dict]:
    """One row per non-baseline benchmark: median ÷ its group baseline's median (or the ratio it
    recorded itself in ``extra_info["ratio"]``), with the goal."""
    baselines = {b.group: b for b in benchmarks if b.extra_info.get("role") == "baseline"}
    rows = []
    for b in benchmarks:
        goal = b.extra_info.get("goal")
        if "ratio" in b.extra_info:  # a ratio the benchmark measured itself (e.g. peak memory)
            rows.append(
                {"group": b.group, "name": b.name, "ratio": b.extra_info["ratio"], "goal": goal, "baseline": ""}
            )
            continue
        base = baselines.get(b.group)
        if base is None or b is base or not b.stats or not base.stats:
            continue
        ratio = b.stats.median / base.stats.median
        rows.append({"group": b.group, "name": b.name, "ratio": ratio, "goal": goal, "baseline": base.name})
    return rows


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["ratios"] = ratios(benchmarks)


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    rows = ratios(session.benchmarks) if session is not None and not session.disabled else []
    if not rows:
        return
    terminalreporter.section("ratios (median ÷ group baseline, same run)")
    for r in rows:
        verdict = (
            ""
            if r["goal"] is None
            else (" ok" if r["ratio"] <= r["goal"] else " MISSES GOAL") + f" (goal ≤ {r['goal']})"
        )
        terminalreporter.write_line(f"{r['group']:38} {r['name']:55} {r['ratio']:6.2f}×{verdict}")
    biased = [b for b in session.benchmarks if "estimate_over_converged" in b.extra_info]
    if biased:
        terminalreporter.section("penalty estimate ÷ converged ‖∂Q‖², batch max (≤ 1 by construction)")
        for b in biased:
            goal = b.extra_info.get("goal_min_ratio")
            verdict = "" if goal is None else f" (goal ≥ {goal})"
            terminalreporter.write_line(f"{b.name:60} {b.extra_info['estimate_over_converged']:.4f}{verdict}")


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["torch_version"] = str(torch.__version__)
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
