"""``lipbench summary --claims``: the papers' claims read off a run's tables, checked against values
computed here from the other tables of the published quick run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from lipbench.cli import main
from lipbench.steps.claims import MET, MISSED, UNMEASURED, Thresholds, claims

QUICK = Path(__file__).resolve().parents[1] / "results" / "quick" / "tables"


@pytest.fixture
def tables(tmp_path) -> Path:
    out = tmp_path / "tables"
    shutil.copytree(QUICK, out)
    return out


def _by_target(found):
    return {(c.name, c.target): c for c in found}


def test_the_quick_runs_claims_agree_with_its_psnr_denoising_and_stability_tables():
    found = claims(QUICK / "results.csv")
    assert [c.name for c in found] == ["C1", "C2", "C3", "C4", "C5", "C5", "denoising"]
    psnr = pd.read_csv(QUICK / "psnr.csv").query("method == 'pnp'")
    tv = psnr[psnr.denoiser == "tv"].psnr.mean()  # one row per kernel: the mean over kernels
    learned = psnr[psnr.denoiser != "tv"].groupby(["denoiser", "lam"]).psnr.mean()
    best = found[4]
    assert f"{learned.max():.2f} dB, TV {tv:.2f} dB" in best.measured
    assert best.verdict == (MET if learned.max() - tv >= 1.0 else MISSED)
    bounds = pd.read_csv(QUICK / "bounds.csv").set_index(["denoiser", "lam"]).crops_max
    fne = learned[[bounds.loc[key] <= 1 for key in learned.index]]  # certified and λ = 0.1, not λ = 1e-07
    assert f"{fne.max():.2f} dB" in found[5].measured and found[5].measured.startswith(fne.idxmax()[0])
    den = pd.read_csv(QUICK / "denoising.csv").query("denoiser == 'dncnn' and lam == 0").iloc[0]
    assert f"({den.psnr - den.psnr_noisy:+.2f})" in found[-1].measured
    stability = pd.read_csv(QUICK / "stability.csv").query("lam == 0 and kernel == 'all'").set_index("method")
    assert f"standard loses {stability.loc['pnp', 'loss']:.2f} dB" in found[2].measured
    grid = pd.read_csv(QUICK / "grid.csv")
    top = grid[grid.lam == grid.lam.max()]
    assert found[0].verdict == (MET if set(top.effect) == {"target met"} else MISSED)


def test_thresholds_decide_and_missing_tables_are_not_measured(tables):
    stability = pd.read_csv(tables / "stability.csv")
    loss = stability.query("lam == 0 and kernel == 'all'").set_index("method").loss
    assert _by_target(claims(tables / "results.csv"))  # the copy reads as the original
    lenient = Thresholds(hold=loss["equivariant-random"] + 1e-6, drift=loss["pnp"] - 1e-6)
    assert claims(tables / "results.csv", lenient)[2].verdict == MET
    strict = Thresholds(hold=loss["equivariant-random"] + 1e-6, drift=loss["pnp"] + 1e-6)
    assert claims(tables / "results.csv", strict)[2].verdict == MISSED
    for name in ("grid", "stability", "lipschitz", "denoising"):
        (tables / f"{name}.csv").unlink()
    found = claims(tables / "results.csv")
    assert [c.verdict for c in found if c.name in ("C1", "C3", "C4", "denoising")] == [UNMEASURED] * 4


def test_an_equivariant_constant_above_j_fails_c4(tables):
    lipschitz = pd.read_csv(tables / "lipschitz.csv")
    lipschitz.loc[(lipschitz.operator == "J_G") & (lipschitz.point == "noisy"), "lip_J_max"] *= 2  # J_G worse
    lipschitz.to_csv(tables / "lipschitz.csv", index=False)
    c4 = claims(tables / "results.csv")[3]
    assert c4.verdict == MISSED and c4.measured.startswith("0 of")


def test_strict_exits_1_unless_every_claim_is_met(tables, capsys):
    out = tables / "claims.md"
    assert main(["summary", str(tables / "results.csv"), "--claims", "--out", str(out)]) == 0
    assert main(["summary", str(tables / "results.csv"), "--claims", "--strict"]) == 1  # quick misses C5
    assert "| C5 " in out.read_text() and "not met" in capsys.readouterr().out
    assert main(["summary", str(tables / "results.csv"), "--strict"]) == 2  # --strict alone judges nothing
    assert "--strict judges the claims" in capsys.readouterr().err
