"""The papers' claims, read off a run's tables (``lipbench summary RESULTS --claims``).

Each claim is a check on the committed tables of one run (``results.csv`` and its siblings in the
same folder), with the threshold of issue 24:

* **C1** the λ grid is calibrated on the crops (``grid.csv``: no effect at the smallest λ > 0, the
  target met at the largest) and the largest λ meets the target over D4 too;
* **C2** c_k never increases in standard PnP for any denoiser with max ‖∂Q‖² ≤ 1 at the crops;
* **C3** in the long runs at λ = 0 (``stability.csv``, over all kernels) standard PnP loses at least
  ``drift`` dB from its peak and equivariant PnP at most ``hold`` dB;
* **C4** Lip(J_G) ≤ Lip(J) for every λ (max of ‖∂J‖ over the test crops, ``lipschitz.csv``);
* **C5** the best learned denoiser's mean final PnP PSNR is at least TV + ``best_gain`` dB, and the
  best one with max ‖∂Q‖² ≤ 1 at the crops at least TV + ``fne_gain`` dB;
* **denoising**: λ = 0 gains at least ``denoise_gain`` dB over the noisy input at the training σ.

A claim whose tables are missing is reported as ``not measured``, never as met.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lipbench.plumbing.io import read_table
from lipbench.steps.headline import COLUMNS, summary_table

MET, MISSED, UNMEASURED = "met", "not met", "not measured"
BASELINES = ("tv",)  # not learned


@dataclass(frozen=True)
class Thresholds:
    """Issue 24's targets (dB)."""

    best_gain: float = 1.0
    fne_gain: float = 0.5
    denoise_gain: float = 3.0
    drift: float = 0.3
    hold: float = 0.05


@dataclass(frozen=True)
class Claim:
    name: str
    target: str
    measured: str
    verdict: str


def _table(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / f"{name}.csv"
    return pd.read_csv(path) if path.is_file() else None


def _grid(grid: pd.DataFrame | None) -> Claim:
    target = "crops: no effect at the smallest λ > 0, max ‖∂Q‖² ≤ 1 at the largest; D4: ≤ 1 at the largest"
    if grid is None:
        return Claim("C1", target, "no grid.csv", UNMEASURED)
    positive = grid[grid.lam > 0]
    effect = {scope: rows.groupby("lam").effect.agg(lambda e: set(e)) for scope, rows in positive.groupby("scope")}
    lams = sorted(positive.lam.unique())
    crops, d4 = effect.get("crops"), effect.get("D4")
    low = crops is not None and crops[lams[0]] == {"no effect"}
    high = crops is not None and crops[lams[-1]] == {"target met"}
    high_d4 = d4 is not None and d4[lams[-1]] == {"target met"}
    worst = grid[grid.lam == lams[-1]].groupby("scope").lip2_Q_max.max()
    measured = f"λ = {lams[0]:g}: {'no effect' if low else 'an effect'}; λ = {lams[-1]:g}: " + ", ".join(
        f"{scope} {value:.4g}" for scope, value in worst.items()
    )
    return Claim("C1", target, measured, MET if low and high and high_d4 else MISSED)


def _monotone(summary: pd.DataFrame) -> Claim:
    target = "no increase of c_k in standard PnP for any denoiser with max ‖∂Q‖² ≤ 1 at the crops"
    fne = summary[summary.lip2_Q <= 1]
    if fne.empty:
        return Claim("C2", target, "no denoiser has max ‖∂Q‖² ≤ 1", UNMEASURED)
    runs = ", ".join(f"{r.denoiser} {r.lam}: {r.increases}" for r in fne.itertuples())
    met = all(str(r.increases).startswith("0 of") for r in fne.itertuples())
    return Claim("C2", target, f"runs with c_k increasing: {runs}", MET if met else MISSED)


def _stability(stability: pd.DataFrame | None, limits: Thresholds) -> Claim:
    target = f"λ = 0, long runs: standard PnP loses ≥ {limits.drift:g} dB from its peak, equivariant ≤ {limits.hold:g}"
    if stability is None:
        return Claim("C3", target, "no stability.csv (no long runs)", UNMEASURED)
    rows = stability[(stability.lam == 0) & (stability.kernel == "all")].set_index("method")
    if not {"pnp", "equivariant-random"} <= set(rows.index):
        return Claim("C3", target, "the long runs lack standard or equivariant-random PnP at λ = 0", UNMEASURED)
    drift, hold = rows.loc["pnp", "loss"], rows.loc["equivariant-random", "loss"]
    measured = (
        f"standard loses {drift:.2f} dB, equivariant {hold:.2f} dB over {rows.loc['pnp', 'iterations']} iterations"
    )
    return Claim("C3", target, measured, MET if drift >= limits.drift and hold <= limits.hold else MISSED)


def _equivariance(lipschitz: pd.DataFrame | None) -> Claim:
    target = "Lip(J_G) ≤ Lip(J) for every λ (max ‖∂J‖ over the crops)"
    if lipschitz is None:
        return Claim("C4", target, "no lipschitz.csv", UNMEASURED)
    noisy = lipschitz[(lipschitz.point == "noisy") & lipschitz.lam.notna()]
    pairs = noisy.pivot_table(index=["denoiser", "lam"], columns="operator", values="lip_J_max", sort=False)
    if "J_G" not in pairs:
        return Claim("C4", target, "J_G was not measured", UNMEASURED)
    pairs = pairs.dropna(subset=["J", "J_G"])
    worse = pairs[pairs.J_G > pairs.J]
    ratio = (pairs.J_G / pairs.J).max()
    measured = f"{len(pairs) - len(worse)} of {len(pairs)} denoisers; largest Lip(J_G)/Lip(J) {ratio:.4f}"
    return Claim("C4", target, measured, MET if worse.empty and len(pairs) else MISSED)


def _psnr(summary: pd.DataFrame, limits: Thresholds) -> list[Claim]:
    pnp = summary.dropna(subset=["pnp"])
    tv = pnp[pnp.denoiser.isin(BASELINES)]
    learned = pnp[~pnp.denoiser.isin(BASELINES)]
    best_target = f"best learned ≥ TV + {limits.best_gain:g} dB"
    fne_target = f"best with max ‖∂Q‖² ≤ 1 at the crops ≥ TV + {limits.fne_gain:g} dB"
    if tv.empty or learned.empty:
        return [Claim("C5", t, "no TV or no learned denoiser", UNMEASURED) for t in (best_target, fne_target)]
    reference = tv.pnp.iloc[0]
    claims = []
    for target, pool, gain in ((best_target, learned, limits.best_gain),
                               (fne_target, learned[learned.lip2_Q <= 1], limits.fne_gain)):  # fmt: skip
        if pool.empty:
            claims.append(Claim("C5", target, "no such denoiser", MISSED))
            continue
        best = pool.loc[pool.pnp.idxmax()]
        measured = (
            f"{best.denoiser} λ = {best.lam}: {best.pnp:.2f} dB, TV {reference:.2f} dB ({best.pnp - reference:+.2f})"
        )
        claims.append(Claim("C5", target, measured, MET if best.pnp - reference >= gain else MISSED))
    return claims


def _denoising(denoising: pd.DataFrame | None, limits: Thresholds) -> Claim:
    target = f"λ = 0 gains ≥ {limits.denoise_gain:g} dB over the noisy input at the training σ"
    if denoising is None:
        return Claim("denoising", target, "no denoising.csv", UNMEASURED)
    base = denoising[(denoising.lam == 0) & ~denoising.denoiser.isin(BASELINES)]
    if base.empty:
        return Claim("denoising", target, "no λ = 0 denoiser", UNMEASURED)
    row = base.iloc[0]
    gain = row.psnr - row.psnr_noisy
    measured = f"{row.psnr:.2f} dB from {row.psnr_noisy:.2f} dB ({gain:+.2f}) on {row.dataset} at σ = {row.sigma:g}"
    return Claim("denoising", target, measured, MET if gain >= limits.denoise_gain else MISSED)


def claims(results: str | Path, limits: Thresholds = Thresholds()) -> list[Claim]:
    """Every claim of the module docstring, for the run whose ``results.csv`` is ``results``."""
    folder = Path(results).parent
    summary = summary_table(read_table(results, ["step", "denoiser", "lam", "metric", "value"]))
    summary = summary.rename(columns={title: key for key, title in COLUMNS.items()})
    return [
        _grid(_table(folder, "grid")),
        _monotone(summary),
        _stability(_table(folder, "stability"), limits),
        _equivariance(_table(folder, "lipschitz")),
        *_psnr(summary, limits),
        _denoising(_table(folder, "denoising"), limits),
    ]


def claims_markdown(found: list[Claim]) -> str:
    table = pd.DataFrame([vars(c) for c in found])
    return table.to_markdown(index=False) + "\n"
