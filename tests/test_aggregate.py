"""Aggregation of synthetic results against values computed by hand."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from lipbench.plumbing.io import write_formatted
from lipbench.steps.aggregate import (
    aggregate,
    convergence_stats,
    convergence_table,
    provenance,
    psnr_table,
    stability_table,
)


def _records() -> pd.DataFrame:
    rows = []
    curves = {"a": [1e-2, 5e-3, 6e-3, 5e-5, 1e-5], "b": [1e-2, 1e-3, 2e-3, 3e-3, 1e-3]}
    for image, curve in curves.items():
        for k, c in enumerate(curve, start=1):
            rows.append(
                {
                    "denoiser": "dncnn",
                    "lam": 0.0,
                    "method": "pnp",
                    "image": image,
                    "kernel": "levin1",
                    "iteration": k,
                    "c": c,
                    "psnr": 20 + k,
                }
            )
    return pd.DataFrame(rows)


def test_convergence_statistics():
    stats = convergence_stats(_records()).set_index("image")
    assert stats.loc["a", "c_final"] == 1e-5 and stats.loc["a", "increases"] == 1 and stats.loc["a", "first_below"] == 4
    assert stats.loc["b", "increases"] == 2 and math.isnan(stats.loc["b", "first_below"])
    table = convergence_table(stats.reset_index())
    assert table.first_below_1e4.item() == "not reached" and table.increases.item() == 1.5
    only_a = convergence_table(stats.reset_index().query("image == 'a'"))
    assert only_a.first_below_1e4.item() == "4"


def test_psnr_table_has_a_blurred_input_row():
    final = pd.DataFrame(
        {
            "denoiser": "dncnn", "lam": [0.0, 0.0, 0.1, 0.1], "method": ["pnp"] * 4, "image": ["a", "b", "a", "b"],
            "kernel": ["k"] * 4,
            "psnr": [30.0, 32.0, 31.0, 33.0], "psnr_best": [31.0, 33.0, 31.0, 33.0], "ssim": [0.8] * 4,
            "psnr_input": [20.0, 22.0, 20.0, 22.0],
        }
    )  # fmt: skip
    table = psnr_table(final)
    row = table[(table["lam"] == 0.1) & (table.method == "pnp")].iloc[0]
    assert row.psnr == 32.0 and row.psnr_std == pytest.approx(2**0.5)
    blurred = table[table.method == "blurred input"].iloc[0]
    assert blurred.psnr == 21.0 and math.isnan(blurred["lam"])


def test_aggregate_writes_every_format(tmp_path):
    recs = _records()
    final = pd.DataFrame(
        {"denoiser": "dncnn", "lam": [0.0, 0.0], "method": ["pnp"] * 2, "image": ["a", "b"], "kernel": ["levin1"] * 2,
         "psnr": [25.0, 26.0], "psnr_best": [25.0, 26.0], "ssim": [0.7, 0.8], "psnr_input": [20.0, 21.0]}
    )  # fmt: skip
    lip = pd.DataFrame(
        {"denoiser": "dncnn", "lam": [0.0, 0.0], "image": ["a", "a"], "point": ["noisy"] * 2, "operator": ["J", "J_G"],
         "element": ["r0", "mean"], "lip_J": [1.1, 1.0], "lip2_Q": [1.3, 1.05]}
    )  # fmt: skip
    paths = {}
    for name, table in {"final": final, "records": recs, "lip": lip}.items():
        paths[name] = tmp_path / f"{name}.csv"
        table.to_csv(paths[name], index=False)
    prov = provenance("test", "abc123", "cpu")
    tables = aggregate([paths["final"]], [paths["records"]], [paths["lip"]], tmp_path / "out", prov)
    for name in ("lipschitz", "psnr", "convergence"):
        for ext in ("csv", "md", "tex"):
            assert (tmp_path / "out" / f"{name}.{ext}").stat().st_size > 0
    assert "\\toprule" in (tmp_path / "out" / "psnr.tex").read_text()
    assert tables["lipschitz"].set_index("operator").loc["J_G", "lip2_Q_max"] == 1.05
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(results.metric) >= {"psnr", "c_final", "lip_J", "lip2_Q"}
    assert (results.config_hash == "abc123").all() and results.lipbench_version.notna().all()


def _long_records() -> pd.DataFrame:
    """Two images × two kernels, iterations 10..50: standard PnP peaks at 20 then drifts, the
    equivariant run keeps rising."""
    curves = {
        ("pnp", "levin1"): [28.0, 29.0, 28.5, 28.0, 27.5],
        ("pnp", "gaussian_1_6"): [26.0, 26.5, 26.4, 26.3, 26.2],
        ("equivariant-random", "levin1"): [28.0, 28.5, 28.7, 28.8, 28.9],
        ("equivariant-random", "gaussian_1_6"): [26.0, 26.2, 26.3, 26.4, 26.5],
    }
    rows = []
    for (method, kernel), curve in curves.items():
        for image, offset in (("a", -0.5), ("b", 0.5)):
            for k, psnr in enumerate(curve, start=1):
                rows.append({"denoiser": "dncnn", "lam": 0.0, "method": method, "image": image, "kernel": kernel,
                             "iteration": 10 * k, "c": 1e-3, "psnr": psnr + offset})  # fmt: skip
    return pd.DataFrame(rows)


def test_stability_table_reads_the_peak_and_the_loss_off_the_mean_curve():
    table = stability_table(_long_records()).set_index(["method", "kernel"])
    standard = table.loc[("pnp", "levin1")]
    assert standard.psnr_peak == 29.0 and standard.peak_iteration == 20 and standard.psnr_final == 27.5
    assert standard.loss == pytest.approx(1.5) and standard.iterations == 50
    both = table.loc[("pnp", "all")]  # mean over kernels first: 27, 27.75, 27.45, 27.15, 26.85
    assert both.psnr_peak == pytest.approx(27.75) and both.peak_iteration == 20 and both.loss == pytest.approx(0.9)
    assert table.loc[("equivariant-random", "all")].loss == 0 and table.loc[
        ("equivariant-random", "all")
    ].psnr_final == (pytest.approx(27.7))
    assert list(table.index.get_level_values("kernel")[:3]) == ["gaussian_1_6", "levin1", "all"]  # all last


def test_aggregate_writes_the_stability_table_and_its_rows_with_long_runs(tmp_path):
    final = pd.DataFrame(
        {"denoiser": "dncnn", "lam": [0.0], "method": ["pnp"], "image": ["a"], "kernel": ["levin1"],
         "psnr": [25.0], "psnr_best": [25.0], "ssim": [0.7], "psnr_input": [20.0]}
    )  # fmt: skip
    lip = pd.DataFrame({"denoiser": "dncnn", "lam": [0.0], "image": ["a"], "point": ["noisy"], "operator": ["J"],
                        "element": ["r0"], "lip_J": [1.1], "lip2_Q": [1.3]})  # fmt: skip
    paths = {}
    for name, table in {"final": final, "records": _records(), "lip": lip, "long": _long_records()}.items():
        paths[name] = tmp_path / f"{name}.csv"
        table.to_csv(paths[name], index=False)
    args = [paths["final"]], [paths["records"]], [paths["lip"]]
    tables = aggregate(*args, tmp_path / "out", provenance("test"), long_records=[paths["long"]])
    assert (tmp_path / "out" / "stability.md").is_file() and len(tables["stability"]) == 6
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    loss = results.query("step == 'pnp-long' and metric == 'psnr_loss' and method == 'pnp' and kernel == 'all'")
    assert loss.value.item() == pytest.approx(0.9)
    without = aggregate(*args, tmp_path / "out2", provenance("test"))
    assert "stability" not in without and not (tmp_path / "out2" / "stability.csv").exists()


def test_latex_tables_escape_names_and_cells_and_print_lambda_exactly(tmp_path):
    table = pd.DataFrame(
        {"lam": [0.0, 1e-5, float("nan")], "kernel": ["gaussian_1_6", "levin1", "a&b"], "lip2_Q_max": [2.5, 1.0, 1.5]}
    )
    write_formatted(table, tmp_path / "t", "max ‖∂Q‖² per λ, 50% of x_1 & y")
    tex = (tmp_path / "t.tex").read_text()
    bare = re.sub(r"\\ensuremath\{[^{}]*\}", "", tex)  # math-mode symbols are fine
    assert not re.search(r"(?<!\\)[_%#$^]", bare), bare  # no special character left unescaped
    rows = tex.split("\\midrule\n")[1].split("\\bottomrule")[0].strip().splitlines()
    header = tex.split("\\toprule\n")[1].splitlines()[0]
    assert header == "lam & kernel & lip2\\_Q\\_max \\\\"
    assert [len(re.findall(r"(?<!\\)&", row)) for row in rows] == [2, 2, 2]  # one cell per column
    assert rows[0].startswith("0 & gaussian\\_1\\_6 &") and rows[1].startswith("1e-05 & levin1 &")
    assert rows[2].startswith("-- & a\\&b &")
    assert "\\caption{max \\ensuremath{\\|}\\ensuremath{\\partial}Q" in tex and "50\\% of x\\_1 \\& y" in tex
    assert not any(ord(c) > 127 for c in tex)
    assert (tmp_path / "t.md").read_text().count("|") > 10


def test_missing_or_foreign_input_tables_give_one_error_naming_them(tmp_path, capsys):
    from lipbench.cli import main

    missing = tmp_path / "nope.csv"
    assert (
        main(["aggregate", "--finals", str(missing), "--records", "x", "--lipschitz", "y", "--out", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == f"lipbench aggregate: error: table {missing} does not exist: run the lipbench step that writes it"
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    assert main(["grid", "--lipschitz", str(foreign), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"lipbench grid: error: table {foreign} lacks the column(s) ['element', 'lam', 'lip2_Q', 'operator'"
    )
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_every_denoiser_is_a_row_in_input_order_and_the_tv_choice_is_recorded(tmp_path):
    """The λ grid, a certified denoiser (λ = 0 too) and TV (λ NaN) in one aggregation: NaN λ rows are
    kept, the grid's rows sort by λ, the others follow in input order, and TV's weight is noted."""
    coords = [("dncnn", 0.1), ("dncnn", 0.0), ("certified", 0.0), ("tv", math.nan)]
    psnrs = {("dncnn", 0.1): 30.0, ("dncnn", 0.0): 31.0, ("certified", 0.0): 29.0, ("tv", math.nan): 27.0}
    final = pd.DataFrame(
        [{"denoiser": d, "lam": lam, "method": "pnp", "image": i, "kernel": "levin1", "psnr": psnrs[d, lam] + j,
          "psnr_best": 0.0, "ssim": 0.5, "psnr_input": 20.0} for d, lam in coords for j, i in enumerate("ab")]
    )  # fmt: skip
    recs = pd.DataFrame(
        [{"denoiser": d, "lam": lam, "method": "pnp", "image": i, "kernel": "levin1", "iteration": k, "c": c}
         for d, lam in coords for i in "ab" for k, c in enumerate([1e-2, 1e-3], start=1)]
    )  # fmt: skip
    lip = pd.DataFrame(
        [{"denoiser": d, "lam": lam, "image": "a", "point": "noisy", "operator": "J", "element": "r0", "lip_J": 1.0,
          "lip2_Q": q} for (d, lam), q in zip(coords, [0.99, 2.5, 1.0, 0.97], strict=True)]
    )  # fmt: skip
    tuning = pd.DataFrame(
        {"stage": ["grid", "refine", "grid"], "prox_weight": [1e-3, 2e-3, 1e-2], "psnr": [26.0, 26.5, 26.2],
         "psnr_std": [1.0] * 3, "chosen": [False, True, False], "tuning_dataset": "bsd400", "tuning_images": "4"}
    )  # fmt: skip
    paths = {}
    for name, table in {"final": final, "records": recs, "lip": lip, "tuning": tuning}.items():
        paths[name] = tmp_path / f"{name}.csv"
        table.to_csv(paths[name], index=False)
    tables = aggregate(
        [paths["final"]],
        [paths["records"]],
        [paths["lip"]],
        tmp_path / "out",
        provenance("t"),
        tuning=[paths["tuning"]],
    )
    psnr = tables["psnr"]
    assert list(zip(psnr.denoiser, psnr["lam"].fillna(-1), strict=True)) == [
        ("dncnn", 0.0),
        ("dncnn", 0.1),
        ("certified", 0.0),
        ("tv", -1),
        ("none", -1),
    ]
    assert psnr.psnr.tolist() == [31.5, 30.5, 29.5, 27.5, 20.0]
    lipschitz = tables["lipschitz"].set_index("denoiser").lip2_Q_max
    assert lipschitz["tv"] == 0.97 and lipschitz["certified"] == 1.0
    assert tables["convergence"].denoiser.tolist() == ["dncnn", "dncnn", "certified", "tv"]
    note = (tmp_path / "out" / "psnr.md").read_text()
    assert "TV: prox weight w = γλ = 0.002, chosen among 3 weights" in note and "4 images of bsd400" in note
    assert tables["tv_tuning"].chosen.tolist() == [False, True, False]
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert results.loc[results.metric == "tv_weight", "value"].tolist() == [2e-3]
    assert results[results.metric == "psnr"].groupby("denoiser").size().to_dict() == {
        "certified": 2,
        "dncnn": 4,
        "tv": 2,
    }


def test_figures_label_the_grid_by_lambda_and_other_denoisers_by_name():
    from lipbench.steps.figures import grid_denoiser, labelled

    table = pd.DataFrame(
        {"denoiser": ["tv", "dncnn", "certified", "dncnn", "dncnn"], "lam": [math.nan, 0.1, 0.0, 0.0, 1e-5]}
    )
    assert grid_denoiser(table) == "dncnn"
    out = labelled(table)
    assert out.denoiser_label.tolist() == ["dncnn λ=0", "dncnn λ=1e-05", "dncnn λ=0.1", "tv", "certified"]
