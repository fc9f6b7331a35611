"""``lipbench compare``: values beyond tolerance or missing are regressions (exit 1)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lipbench.cli import main
from lipbench.plumbing.errors import LipbenchError
from lipbench.steps.compare import DEFAULT_TOLERANCES, compare, parse_tolerances

GOLDEN = Path(__file__).parent / "golden" / "ci" / "results.csv"


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": ["pnp", "pnp", "lipschitz"], "lam": [0.0, 0.1, 0.1], "method": ["pnp", "pnp", None],
            "image": ["a", "a", "a"], "kernel": ["k", "k", None], "point": [None, None, "noisy"],
            "operator": [None, None, "J"], "element": [None, None, "r0"], "metric": ["psnr", "psnr", "lip_J"],
            "value": [30.0, 31.0, 1.0], "git_commit": ["x", "x", "x"],
        }
    )  # fmt: skip


def test_tolerances():
    base = _table()
    new = base.assign(value=[30.09, 31.0, 1.009], git_commit="y")  # within 0.1 dB and 1 %
    assert compare(base, new, DEFAULT_TOLERANCES).empty
    worse = base.assign(value=[29.8, 31.0, 1.02])
    report = compare(base, worse, DEFAULT_TOLERANCES)
    assert list(report.metric) == ["psnr", "lip_J"] and report.change.iloc[0] == pytest.approx(-0.2)
    report = compare(base, worse, parse_tolerances(["psnr=0.5", "lip_J=3%"]))
    assert report.empty
    missing = compare(base, base.iloc[:2], DEFAULT_TOLERANCES)
    assert list(missing.status) == ["missing"]
    with pytest.raises(LipbenchError, match="is not METRIC=VALUE"):
        parse_tolerances(["psnr"])


def test_cli_exit_codes(tmp_path, capsys):
    base = tmp_path / "base.csv"
    _table().to_csv(base, index=False)
    assert main(["compare", str(base), str(base)]) == 0
    bad = tmp_path / "bad.csv"
    _table().assign(value=[25.0, 31.0, 1.0]).to_csv(bad, index=False)
    assert main(["compare", str(base), str(bad)]) == 1
    assert "1 of 3 values regressed" in capsys.readouterr().err
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    assert main(["compare", str(base), str(tmp_path / "junk.csv")]) == 2


def test_golden_table_is_a_full_ci_results_table():
    golden = pd.read_csv(GOLDEN)
    assert set(golden.metric) >= {"psnr", "psnr_best", "ssim", "c_final", "lip_J", "lip2_Q"}
    assert golden.value.notna().all() and golden.config.eq("ci").all()
