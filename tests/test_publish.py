"""``lipbench publish``: a finished run's tables, figures and timings become the published reference."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lipbench.cli import main
from lipbench.steps.aggregate import results_code_hash


def _run(folder, marker: str):
    for name in ("tables/results.csv", "tables/psnr.md", "figures/panel.png", "benchmarks/pnp/x.tsv",
                 "models/lam0/model.pt", "models/lam0/checkpoint.pt", "logs/train/lam0.log"):  # fmt: skip
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"{marker} {name}")
    return folder


def test_publish_replaces_the_reference_as_a_whole(tmp_path, monkeypatch, capsys):
    run = _run(tmp_path / "runs" / "quick", "new")
    old = _run(tmp_path / "results" / "quick", "old")
    (old / "tables" / "stale.csv").write_text("from an earlier run")
    monkeypatch.chdir(tmp_path)
    assert main(["publish", str(run)]) == 0
    published = sorted(p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file())
    assert published == ["benchmarks/pnp/x.tsv", "figures/panel.png", "tables/psnr.md", "tables/results.csv"]
    assert (old / "tables" / "results.csv").read_text() == "new tables/results.csv"
    assert "published 4 files" in capsys.readouterr().out
    assert main(["publish", str(run), str(tmp_path / "elsewhere"), "--models"]) == 0
    assert (tmp_path / "elsewhere" / "models" / "lam0" / "model.pt").is_file()
    assert not (tmp_path / "elsewhere" / "models" / "lam0" / "checkpoint.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "results", "runs"]  # no staging left


def test_an_unfinished_run_is_refused_and_the_reference_kept(tmp_path, capsys):
    run = tmp_path / "runs" / "quick"
    run.mkdir(parents=True)
    old = _run(tmp_path / "results" / "quick", "old")
    assert main(["publish", str(run), str(old)]) == 2
    assert "holds no tables/results.csv: finish the run first" in capsys.readouterr().err
    assert (old / "tables" / "results.csv").read_text() == "old tables/results.csv"


def test_the_summary_reads_each_quantity_from_its_rows():
    """Hand-made long-format rows: the crops' max ‖∂Q‖² (J at r0 only), mean PSNRs per method, runs
    with c_k increasing, the denoising PSNR; TV (λ NaN) gets a dash, not a NaN."""
    import math

    import pandas as pd

    from lipbench.steps.headline import summary_table

    def row(denoiser, lam, step, metric, value, **more):
        return {"denoiser": denoiser, "lam": lam, "step": step, "metric": metric, "value": value, **more}

    lip = {"point": "noisy", "operator": "J"}
    rows = [
        row("dncnn", 0.0, "lipschitz", "lip2_Q", 1.5, element="r0", **lip),
        row("dncnn", 0.0, "lipschitz", "lip2_Q", 1.2, element="r0", **lip),
        row("dncnn", 0.0, "lipschitz", "lip2_Q", 9.0, element="r1", **lip),  # D4: not the crops' verdict
        row("dncnn", 0.0, "lipschitz", "lip2_Q", 9.5, element="r0", point="search", operator="J"),  # worst found
        row("dncnn", 0.0, "lipschitz", "lip2_Q", 20.0, element="r0", point="y", operator="J_clamped"),  # not J
        row("dncnn", 0.0, "pnp", "psnr", 27.0, method="pnp"),
        row("dncnn", 0.0, "pnp", "psnr", 29.0, method="pnp"),
        row("dncnn", 0.0, "pnp", "psnr", 30.0, method="equivariant-random"),
        row("dncnn", 0.0, "pnp", "increases", 2, method="pnp"),
        row("dncnn", 0.0, "pnp", "increases", 0, method="pnp"),
        row("dncnn", 0.0, "denoise", "denoise_psnr", 41.0),
        row("tv", math.nan, "pnp", "psnr", 26.0, method="pnp"),
    ]
    table = summary_table(pd.DataFrame(rows))
    dncnn = table.iloc[0].to_dict()
    assert dncnn["λ"] == "0" and dncnn["max ‖∂Q‖² (crops)"] == 1.5 and dncnn["PnP PSNR (dB)"] == 28.0
    assert dncnn["equivariant PnP PSNR (dB)"] == 30.0 and dncnn["PnP runs with c_k increasing"] == "1 of 2"
    assert dncnn["denoising PSNR (dB)"] == 41.0 and dncnn["worst ‖∂Q‖² found"] == 9.5
    assert list(table.denoiser) == ["dncnn", "tv"] and table.iloc[1]["λ"] == "—"


PUBLISHED = sorted((Path(__file__).resolve().parents[1] / "results").glob("*/tables/results.csv"))


@pytest.mark.parametrize("table", PUBLISHED, ids=[p.parts[-3] for p in PUBLISHED])
def test_published_results_were_made_by_heads_code(table):
    """A published reference is what HEAD's code produces: the code hash of the steps its numbers come
    from (training, TV tuning, Lipschitz, denoising, PnP, aggregation) is HEAD's. After an edit to
    them, rerun the configuration and `lipbench publish` it (docs/workflow.md)."""
    results = pd.read_csv(table, usecols=lambda c: c in ("code_hash", "git_commit"))
    made_by = sorted(results["code_hash"].unique()) if "code_hash" in results else ["no code hash"]
    assert made_by == [results_code_hash()], (
        f"{table} was made by commit {sorted(results.git_commit.unique())} (code {made_by}); HEAD's result steps "
        f"hash to {results_code_hash()}: regenerate it (snakemake, then lipbench publish)"
    )


def test_the_published_check_sees_every_reference_and_fails_on_other_code(tmp_path):
    assert "quick" in [p.parts[-3] for p in PUBLISHED]  # the check sees the committed references
    stale = tmp_path / "results.csv"
    pd.DataFrame({"code_hash": ["0123456789abcdef"], "git_commit": ["e882074"]}).to_csv(stale, index=False)
    with pytest.raises(AssertionError, match="made by commit \\['e882074'\\]"):
        test_published_results_were_made_by_heads_code(stale)
