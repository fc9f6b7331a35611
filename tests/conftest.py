"""Shared fixtures: the real data root (``LIPBENCH_DATA``, else ``../shared/data``), the device
of the device-independent checks (``LIPBENCH_TEST_DEVICE``, default cpu; ``benchmarks/gpu.sh`` sets cuda),
``lipbench`` run in this process (``run_cli``) and the tiny checkpoints of ``checkpoints.py``, each
built once per session. The tests run with one torch thread (``LIPBENCH_TEST_THREADS``)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import checkpoints
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lipbench.cli import main
from lipbench.plumbing.precision import tf32

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread (``$LIPBENCH_TEST_THREADS`` to change it): the tests' tensors are small,
    and on a shared 2-core machine OpenMP's barriers wait for a descheduled second thread. Measured
    with a background job on the other core: a 1-step training 29 s with two threads, 2.8 s with one;
    20 PnP iterations on the full BSD10 images 56 s with two, 35 s with one."""
    torch.set_num_threads(int(os.environ.get("LIPBENCH_TEST_THREADS", "1")))


@pytest.hookimpl(tryfirst=True)  # before -m selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A Snakemake end-to-end run (``workflow``) takes minutes: it is ``slow`` too, so that
    ``pytest -m "not slow"`` (which replaces the default ``-m 'not workflow'``) leaves it out."""
    for item in items:
        if item.get_closest_marker("workflow") is not None:
            item.add_marker(pytest.mark.slow)


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


@dataclass(frozen=True)
class Run:
    """What ``lipbench ARGS`` returned and printed."""

    code: int
    out: str
    err: str


# the warnings Python shows on stderr by default (it ignores these categories outside __main__)
_HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """``run_cli(*args)`` runs ``lipbench ARGS`` in this process (``lipbench.cli.main``), as a
    subprocess would see it: the exit code (argparse's ``SystemExit`` too), stdout, and stderr with
    every warning Python would print there appended. An exception ``main`` does not turn into a
    clear error (a traceback in a subprocess) propagates and fails the test."""

    def run(*args: str) -> Run:
        capsys.readouterr()  # what the test printed before
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("error", category=DeprecationWarning, module="lipbench")  # as pyproject's
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code
        out, err = capsys.readouterr()
        shown = [w for w in caught if not issubclass(w.category, _HIDDEN_WARNINGS)]
        err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in shown)
        return Run(code, out, err)

    return run


# The tiny checkpoints (tests/checkpoints.py), each built once per session. Tests read them and never
# write into their folders (copy one first to change it). Training reads its images from data_dir:
# a session fixture is set up before the per-test LIPBENCH_DATA above.


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 3-layer, 8-channel DnCNN with seeded random weights: the denoiser of the PnP tests."""
    return str(checkpoints.random_dncnn(tmp_path_factory.mktemp("random") / "dncnn.pt"))


@pytest.fixture(scope="session")
def smallest_model(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """``model.pt`` of a real ``lipbench train`` run, the smallest one (``SMALLEST_TRAIN``: 2 steps)."""
    return checkpoints.trained(tmp_path_factory.mktemp("smallest"), checkpoints.SMALLEST_TRAIN, root=data_dir)


@pytest.fixture(scope="session")
def nan_model(smallest_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``smallest_model`` with one weight tensor all NaN (a diverged training)."""
    return checkpoints.with_nan_weight(smallest_model, tmp_path_factory.mktemp("nan") / "nan.pt")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The folder (``model.pt``, ``checkpoint.pt``, ``log.csv``) of a finished ``TINY_TRAIN`` run: 12
    steps with the penalty, probed and checkpointed every 4."""
    out = tmp_path_factory.mktemp("tiny_run")
    checkpoints.trained(out, root=data_dir)
    return out


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
