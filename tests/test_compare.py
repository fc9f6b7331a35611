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
    new = pd.concat([base.iloc[[2]].assign(image="b"), base.iloc[[0]].assign(value=29.0), base.iloc[[2]]])
    mixed = compare(base, new, DEFAULT_TOLERANCES)  # an extra row, a move, a missing row
    assert list(mixed.status) == ["beyond tolerance", "missing", "extra"]  # what moved first
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


def _tampered(tmp_path, edit) -> str:
    golden = pd.read_csv(GOLDEN, dtype={"image": str})
    path = tmp_path / "tampered.csv"
    edit(golden).to_csv(path, index=False)
    return str(path)


def _moved(metric: str, change: float):
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[table.metric == metric, "value"] += change
        return table

    return edit


@pytest.mark.parametrize(
    ("edit", "regressed"),
    [
        (_moved("denoise_psnr", -0.5), "272 of 2619 values regressed"),
        (_moved("denoise_psnr", float("nan")), "272 of 2619 values regressed"),
        (_moved("psnr_input", 1e-3), "140 of 2619 values regressed"),
        (_moved("psnr_loss", 0.2), "6 of 2619 values regressed"),  # the long runs' stability rows
        (lambda t: t[t.metric != "denoise_psnr"], "272 of 2619 values regressed"),  # missing from the new table
    ],
)
def test_every_metric_of_the_golden_table_is_checked(tmp_path, capsys, edit, regressed):
    assert main(["compare", str(GOLDEN), _tampered(tmp_path, edit)]) == 1
    assert regressed in capsys.readouterr().err


def test_the_golden_table_reproduces_itself_counting_every_value(capsys):
    assert main(["compare", str(GOLDEN), str(GOLDEN), "--strict"]) == 0
    out, err = capsys.readouterr()
    assert "no regression: 2619 values within tolerance" in out and err == ""


def test_a_metric_without_tolerance_is_refused_not_passed(tmp_path, capsys):
    def add_metric(table: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([table, table[table.metric == "tv_weight"].assign(metric="novel")], ignore_index=True)

    base = _tampered(tmp_path, add_metric)
    assert main(["compare", base, base]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no tolerance for the metric(s) novel of the baseline" in err
    assert main(["compare", base, base, "--tolerance", "novel=0.1"]) == 0
    assert "no regression: 2620 values within tolerance" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("psnrr=0.1", "--tolerance 'psnrr=0.1': no metric 'psnrr' to compare (the metrics: c_final, denoise_psnr"),
        ("psnr=-0.1", "--tolerance 'psnr=-0.1': a tolerance must be a finite number >= 0"),
        ("psnr=nan", "--tolerance 'psnr=nan': a tolerance must be a finite number >= 0"),
        ("lip_J=inf%", "--tolerance 'lip_J=inf%': a tolerance must be a finite number >= 0"),
    ],
)
def test_a_bad_tolerance_is_one_error(capsys, pair, message):
    assert main(["compare", str(GOLDEN), str(GOLDEN), "--tolerance", pair]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"lipbench compare: error: {message}"), err


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda t: t.assign(config_hash="0123456789ab"), "the configuration changed: config_hash d218ba498a03 in"),
        (lambda t: pd.concat([t, t.tail(2).assign(image="new")]), "2 rows of the new table are not in the baseline"),
    ],
)
def test_another_configuration_or_extra_rows_warn_and_fail_when_strict(tmp_path, capsys, edit, said):
    new = _tampered(tmp_path, edit)
    assert main(["compare", str(GOLDEN), new]) == 0
    assert f"lipbench compare: warning: {said}" in capsys.readouterr().err
    assert main(["compare", str(GOLDEN), new, "--strict", "--report", str(tmp_path / "r.md")]) == 1
    assert f"lipbench compare: error: {said}" in capsys.readouterr().err
    assert f"Warning: {said}" in (tmp_path / "r.md").read_text()
