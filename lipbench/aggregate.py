"""Aggregation: one long-format results table with provenance, and the papers' summary tables.

Inputs are the tables of ``lipbench pnp`` (``final.csv`` and ``records``) and ``lipbench
lipschitz``, each carrying the model's λ. Outputs (per table: CSV, Markdown and LaTeX):

* ``lipschitz``: λ × point × operator → mean and max of ‖∂J‖ and ‖∂Q‖² over the images;
* ``psnr``: λ × kernel × method → PSNR of the last and of the best iterate (mean ± std over the
  images), plus the blurred input;
* ``convergence``: λ × method → final c_k, iterations where c_k increased, first k with
  c_k < 1e-4 (median over images; "not reached" if an image never gets there);
* ``denoising``: λ → PSNR of J on the noisy test set (BSD68) at the training noise level.
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch

import lipbench
from lipbench.outputs import read_tables, write_formatted, write_table

C_THRESHOLD = 1e-4


def provenance(config_name: str, config_hash: str = "", device: str = "cpu") -> dict[str, str]:
    """Where the numbers come from: code version, software versions, device, configuration hash."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True,  # noqa: S607
            cwd=Path(__file__).parent,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "config": config_name,
        "config_hash": config_hash,
        "git_commit": commit,
        "lipbench_version": lipbench.__version__,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "device": device,
    }


def convergence_stats(records: pd.DataFrame) -> pd.DataFrame:
    """Per run (λ, method, image, kernel): final c_k, number of increases, first k with c_k < 1e-4."""

    def one(run: pd.DataFrame) -> pd.Series:
        c = run.sort_values("iteration")
        below = c.iteration[c.c < C_THRESHOLD]
        return pd.Series(
            {
                "c_final": c.c.iloc[-1],
                "increases": int((c.c.diff() > 0).sum()),
                "first_below": float(below.iloc[0]) if len(below) else float("nan"),
            }
        )

    keys = ["lam", "method", "image", "kernel"]
    return records.groupby(keys)[["iteration", "c"]].apply(one).reset_index()


def lipschitz_table(lip: pd.DataFrame) -> pd.DataFrame:
    table = lip.groupby(["lam", "point", "operator"]).agg(
        lip_J_mean=("lip_J", "mean"), lip_J_max=("lip_J", "max"),
        lip2_Q_mean=("lip2_Q", "mean"), lip2_Q_max=("lip2_Q", "max"),
    )  # fmt: skip
    return table.reset_index()


def psnr_table(final: pd.DataFrame) -> pd.DataFrame:
    table = final.groupby(["lam", "kernel", "method"]).agg(
        psnr=("psnr", "mean"), psnr_std=("psnr", "std"), psnr_best=("psnr_best", "mean"),
        psnr_best_std=("psnr_best", "std"), ssim=("ssim", "mean"),
    )  # fmt: skip
    blurred = final.drop_duplicates(["image", "kernel"]).groupby("kernel").agg(
        psnr=("psnr_input", "mean"), psnr_std=("psnr_input", "std")
    )  # fmt: skip
    blurred = blurred.assign(lam=float("nan"), method="blurred input").reset_index()
    return pd.concat([table.reset_index(), blurred], ignore_index=True)


def convergence_table(stats: pd.DataFrame) -> pd.DataFrame:
    def first(values: pd.Series) -> str:
        return "not reached" if values.isna().any() else f"{values.median():.0f}"

    table = stats.groupby(["lam", "method"]).agg(
        c_final=("c_final", "mean"), c_final_max=("c_final", "max"),
        increases=("increases", "mean"), first_below_1e4=("first_below", first),
    )  # fmt: skip
    return table.reset_index()


def denoising_table(den: pd.DataFrame) -> pd.DataFrame:
    table = den.groupby(["lam", "dataset", "sigma"]).agg(
        psnr=("psnr", "mean"), psnr_std=("psnr", "std"), psnr_noisy=("psnr_noisy", "mean"), images=("psnr", "size")
    )  # fmt: skip
    return table.reset_index()


def long_format(
    final: pd.DataFrame, stats: pd.DataFrame, lip: pd.DataFrame, den: pd.DataFrame, prov: dict[str, str]
) -> pd.DataFrame:
    """One row per measured value: experiment coordinates, ``metric``, ``value`` and provenance."""
    parts = []
    pnp_keys = ["lam", "method", "image", "kernel"]
    for metrics, table in ((["psnr", "psnr_best", "ssim", "psnr_input"], final), (["c_final", "increases"], stats)):
        part = table.melt(id_vars=pnp_keys, value_vars=metrics, var_name="metric")
        parts.append(part.assign(step="pnp"))
    lip_keys = ["lam", "image", "point", "operator", "element"]
    parts.append(lip.melt(id_vars=lip_keys, value_vars=["lip_J", "lip2_Q"], var_name="metric").assign(step="lipschitz"))
    if not den.empty:
        denoise = den.melt(id_vars=["lam", "image"], value_vars=["psnr"], var_name="metric")
        parts.append(denoise.assign(metric="denoise_psnr", step="denoise"))
    out = pd.concat(parts, ignore_index=True)
    return out.assign(**prov)


def aggregate(
    finals: Iterable[str | Path],
    records: Iterable[str | Path],
    lipschitz: Iterable[str | Path],
    out: Path,
    prov: dict[str, str],
    *,
    denoise: Iterable[str | Path] = (),
) -> dict[str, pd.DataFrame]:
    """Build and write every table (see the module docstring) under ``out``."""
    final = read_tables(finals, ["lam", "method", "image", "kernel", "psnr", "psnr_best", "ssim", "psnr_input"])
    recs = read_tables(records, ["lam", "method", "image", "kernel", "iteration", "c"])
    lip = read_tables(lipschitz, ["lam", "image", "point", "operator", "element", "lip_J", "lip2_Q"])
    den = read_tables(denoise, ["lam", "image", "dataset", "sigma", "psnr", "psnr_noisy"])
    stats = convergence_stats(recs)
    tables = {
        "lipschitz": lipschitz_table(lip),
        "psnr": psnr_table(final),
        "convergence": convergence_table(stats),
    }
    if not den.empty:
        tables["denoising"] = denoising_table(den)
    captions = {
        "lipschitz": "Spectral norms of the Jacobians of J and Q = 2J - Id (mean and max over BSD10).",
        "psnr": "PSNR (dB) of the last and best PnP iterates, mean and std over BSD10.",
        "convergence": "Convergence of PnP: final c_k, iterations where c_k increased, first k with c_k < 1e-4.",
        "denoising": "Denoising PSNR (dB) at the training noise level, mean and std over the test set.",
    }
    for name, table in tables.items():
        write_formatted(table, out / name, captions[name])
    write_table(long_format(final, stats, lip, den, prov), out / "results.csv")
    return tables
