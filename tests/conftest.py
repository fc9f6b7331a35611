"""Shared fixtures: the real data root (``LIPBENCH_DATA``, else ``../shared/data``) and the device
of the device-independent checks (``LIPBENCH_TEST_DEVICE``, default cpu; ``benchmarks/gpu.sh`` sets cuda)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lipbench.plumbing.precision import tf32

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (``$LIPBENCH_DATA``, else ``resources/data``); tests fail, not skip, without them."""
    root = Path(os.environ.get("LIPBENCH_DATA") or REPO / "resources" / "data").resolve()
    if not (root / "BSDS500" / "val").is_dir():
        pytest.fail(f"no data at {root}: run `lipbench fetch --all` or set LIPBENCH_DATA (see README)")
    return root


@pytest.fixture(autouse=True)
def _isolated_data_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """Every test sees LIPBENCH_DATA pointing at the real data, whatever the caller's cwd."""
    monkeypatch.setenv("LIPBENCH_DATA", str(data_dir))


@pytest.fixture
def device() -> Iterator[torch.device]:
    """Where the exact-reference checks run: ``$LIPBENCH_TEST_DEVICE`` (default cpu), TF32 off (its
    5e-4 relative error is not what these tests measure); the references themselves stay on the CPU."""
    dev = torch.device(os.environ.get("LIPBENCH_TEST_DEVICE", "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.fail("LIPBENCH_TEST_DEVICE=cuda but CUDA is not available")
    with tf32(False):
        yield dev


class ScalarReads(TorchDispatchMode):
    """Counts tensor → Python scalar reads (``aten._local_scalar_dense``: ``item()``, ``bool()``), each
    a host synchronisation on a GPU; the count is the same on every device. ``ignore``: tensors whose
    reads do not count (e.g. the optimiser's step counters, which live on the CPU)."""

    def __init__(self, ignore: tuple[torch.Tensor, ...] = ()) -> None:
        super().__init__()
        self.count = 0
        self.ignore = {id(t) for t in ignore}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and id(args[0]) not in self.ignore:
            self.count += 1
        return func(*args, **(kwargs or {}))
