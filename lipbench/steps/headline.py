"""The headline table of a run, read from its long-format ``results.csv`` (``lipbench summary``): per
denoiser, the largest ‖∂Q‖² over the test crops (J itself) and at any point evaluated (where PnP
goes and the adversarial search: a lower bound on its global max), the mean final PSNR of standard and
equivariant PnP over every image and kernel, how many runs saw c_k increase, and the denoising PSNR.
The README's table is this command's output for the published quick run (a test keeps them equal)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lipbench.plumbing.io import read_table

COLUMNS = {
    "denoiser": "denoiser",
    "lam": "λ",
    "lip2_Q": "max ‖∂Q‖² (crops)",
    "worst_found": "worst ‖∂Q‖² found",
    "pnp": "PnP PSNR (dB)",
    "equivariant-random": "equivariant PnP PSNR (dB)",
    "increases": "PnP runs with c_k increasing",
    "denoise_psnr": "denoising PSNR (dB)",
}


def lam_text(lam: float) -> str:
    """λ as the headline table writes it: ``%g``, ``—`` for none (TV, the blurred input)."""
    return "—" if pd.isna(lam) else f"{lam:g}"


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per denoiser (in the table's order) of the quantities in :data:`COLUMNS`; λ as text
    (``%g``, ``—`` for none: TV, the blurred input)."""
    rows = results.assign(lam=results.lam.map(lam_text))
    keys = ["denoiser", "lam"]

    def per_denoiser(selected: pd.DataFrame, name: str, how: str) -> pd.Series:
        return selected.groupby(keys, sort=False).value.agg(how).rename(name)

    lip = rows.query("step == 'lipschitz' and point == 'noisy' and operator == 'J' and element == 'r0'")
    parts = [per_denoiser(lip[lip.metric == "lip2_Q"], "lip2_Q", "max")]
    anywhere = rows.query("step == 'lipschitz' and operator == 'J' and metric == 'lip2_Q'")
    parts.append(per_denoiser(anywhere, "worst_found", "max"))  # every point kind: a lower bound on the sup
    pnp = rows[(rows.step == "pnp") & (rows.metric == "psnr")]
    parts += [per_denoiser(pnp[pnp.method == m], m, "mean") for m in ("pnp", "equivariant-random")]
    increases = rows.query("step == 'pnp' and method == 'pnp' and metric == 'increases'")
    parts.append(increases.groupby(keys, sort=False).value.agg(lambda v: f"{int((v > 0).sum())} of {len(v)}")
                 .rename("increases"))  # fmt: skip
    parts.append(per_denoiser(rows[rows.metric == "denoise_psnr"], "denoise_psnr", "mean"))
    table = rows[keys].drop_duplicates().set_index(keys).join(parts, how="left").reset_index()
    return table[[c for c in COLUMNS if c in table.columns]].rename(columns=COLUMNS)


def summary_markdown(path: str | Path) -> str:
    """:func:`summary_table` of a ``results.csv`` as Markdown (values to 3 decimals)."""
    table = summary_table(read_table(path, ["step", "denoiser", "lam", "metric", "value"]))
    table = table.astype(object).where(table.notna(), None)
    return table.to_markdown(index=False, floatfmt=".3f", missingval="—") + "\n"
