"""Shared fixtures: the real data root (``LIPBENCH_DATA``, else ``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
