"""The papers' figures from the workflow's tables, with one shared style (seaborn, colour-blind
palette, sized for a column): each written as PDF and PNG.

* ``convergence``: c_k vs k (log scale), one curve per λ, a panel per method;
* ``psnr_iterations``: PSNR vs k, standard vs equivariant PnP, with the λ = 0 denoiser;
* ``lipschitz``: max ‖∂Q‖² over the images vs λ (J and the group mean J_G), line at 1;
* ``tradeoff``: final PSNR vs max ‖∂Q‖², one point per λ and method;
* ``panel``: ground truth, observation and the restorations per λ for one image and kernel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import matplotlib as mpl
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from lipbench.data import image_ids, load_images, load_kernel
from lipbench.errors import LipbenchError
from lipbench.io import atomic_path
from lipbench.metrics import psnr
from lipbench.observe import centre_crop, observe
from lipbench.outputs import read_table, read_tables
from lipbench.physics import Blur

COLUMN_WIDTH = 3.4  # inches: one column of a two-column paper
FIGURES = ("convergence", "psnr_iterations", "lipschitz", "tradeoff", "panel")


def _style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=0.9)
    mpl.rcParams.update({"figure.dpi": 200, "savefig.bbox": "tight", "legend.frameon": False})


def _figure(width: float, height: float, ncols: int = 1, **kwargs) -> tuple[Figure, object]:
    """A figure without pyplot: no global state, no backend switch for callers' notebooks."""
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols, **kwargs)


def _save(fig: Figure, out: Path, name: str) -> None:
    for ext in ("pdf", "png"):
        with atomic_path(out / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext)


def _lam_labels(values: pd.Series) -> pd.Series:
    return values.map(lambda v: f"{v:g}")


def convergence(records: pd.DataFrame, out: Path) -> None:
    curves = records.groupby(["lam", "method", "iteration"]).c.median().reset_index()
    curves["λ"] = _lam_labels(curves["lam"])
    methods = list(dict.fromkeys(curves.method))
    fig, axes = _figure(COLUMN_WIDTH * len(methods), 2.6, len(methods), sharey=True, squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        sns.lineplot(data=curves[curves.method == method], x="iteration", y="c", hue="λ", ax=ax)
        ax.set(yscale="log", title=method, xlabel="iteration k", ylabel=r"$c_k = \|x_k - x_{k-1}\| / \|x_0\|$")
    _save(fig, out, "convergence")


def psnr_iterations(records: pd.DataFrame, out: Path) -> None:
    """PSNR vs k with the smallest λ (the long runs when given: paper 2's stability figure)."""
    base = records[records["lam"] == records["lam"].min()]
    curves = base.groupby(["method", "iteration"]).psnr.mean().reset_index()
    fig, ax = _figure(COLUMN_WIDTH, 2.4)
    sns.lineplot(data=curves, x="iteration", y="psnr", hue="method", ax=ax)
    if curves.iteration.max() >= 1000:
        ax.set_xscale("log")
    ax.set(xlabel="iteration k", ylabel="PSNR (dB)", title=f"λ = {base['lam'].min():g}, mean over images × kernels")
    _save(fig, out, "psnr_iterations")


def lipschitz(lip: pd.DataFrame, out: Path) -> None:
    worst = lip.groupby(["lam", "point", "operator"]).lip2_Q.max().reset_index()
    fig, ax = _figure(COLUMN_WIDTH, 2.4)
    sns.lineplot(data=worst, x="lam", y="lip2_Q", hue="operator", style="point", markers=True, ax=ax)
    ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
    lams = sorted(worst["lam"].unique())
    positive = [v for v in lams if v > 0]
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
    ax.set_xlim(left=0)
    ax.set_xticks(lams, [f"{v:g}" for v in lams])
    ax.set(xlabel="λ", ylabel=r"max $\|\partial Q\|^2$ over images")
    _save(fig, out, "lipschitz")


def tradeoff(final: pd.DataFrame, lip: pd.DataFrame, out: Path) -> None:
    worst = lip[(lip.operator == "J") & (lip.element == "r0")].groupby("lam").lip2_Q.max().rename("lip2_Q_max")
    points = final.groupby(["lam", "method"]).psnr.mean().reset_index().join(worst, on="lam")
    points["λ"] = _lam_labels(points["lam"])
    fig, ax = _figure(COLUMN_WIDTH, 2.4)
    sns.scatterplot(data=points, x="lip2_Q_max", y="psnr", hue="λ", style="method", s=40, ax=ax)
    ax.axvline(1.0, color="0.3", lw=0.8, ls="--")
    ax.set(xlabel=r"max $\|\partial Q\|^2$ (J, noisy inputs)", ylabel="final PSNR (dB)")
    ax.legend(fontsize="x-small", bbox_to_anchor=(1.02, 1), loc="upper left")
    _save(fig, out, "tradeoff")


def panel(pnp_dirs: Iterable[Path], out: Path, root: str | None = None) -> None:
    """One image and kernel: ground truth, observation, and the standard-PnP result of each λ."""
    runs = []
    for folder in pnp_dirs:
        settings = json.loads((folder / "settings.json").read_text())
        lam = read_table(folder / "final.csv")["lam"].iloc[0]
        if settings["equivariance"] == "none":
            runs.append((lam, settings, torch.load(folder / "final.pt", weights_only=True)))
    if not runs:
        raise LipbenchError("the image panel needs a standard PnP run (equivariance none): add one to --pnp")
    runs.sort(key=lambda r: r[0])
    _, settings, iterates = runs[0]
    image_id, kernel = next(iter(iterates)).split("/")
    x = load_images(settings["dataset"], root)[image_ids(settings["dataset"], root).index(image_id)]
    x = centre_crop(x, settings["crop"]) if settings["crop"] else x
    sigma = settings["kernel_sigma"].get(kernel, settings["sigma"])
    y = observe(x, Blur(load_kernel(kernel, root)), sigma, image_id, kernel)
    tiles = [("ground truth", x, None), (f"observed ({kernel})", y, psnr(y, x).item())]
    tiles += [
        (f"λ = {lam:g}", it[f"{image_id}/{kernel}"], psnr(it[f"{image_id}/{kernel}"], x).item()) for lam, _, it in runs
    ]
    fig, axes = _figure(1.4 * len(tiles), 1.8, len(tiles))
    for ax, (title, img, value) in zip(axes, tiles, strict=True):
        ax.imshow(img[0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("" if value is None else f"{value:.2f} dB", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    _save(fig, out, "panel")


def _records(folder: Path) -> Path:
    """A PnP folder's records table (CSV or parquet)."""
    found = sorted(folder.glob("records.*"))
    if not found:
        raise LipbenchError(f"{folder} has no records table: give output folders of `lipbench pnp`")
    return found[0]


def make_figures(
    pnp_dirs: list[Path],
    lipschitz_tables: list[Path],
    out: Path,
    root: str | None = None,
    long_dirs: list[Path] | None = None,
) -> list[str]:
    """Every figure of the module docstring, from ``lipbench pnp`` folders and Lipschitz tables
    (``long_dirs``: the long runs, used for the PSNR-vs-iteration figure when given)."""
    _style()
    records = read_tables([_records(d) for d in pnp_dirs], ["lam", "method", "iteration", "c", "psnr"])
    final = read_tables([d / "final.csv" for d in pnp_dirs], ["lam", "method", "psnr"])
    lip = read_tables(lipschitz_tables, ["lam", "point", "operator", "element", "lip2_Q"])
    convergence(records, out)
    long_records = [read_table(_records(d)) for d in long_dirs or []]
    psnr_iterations(pd.concat(long_records, ignore_index=True) if long_records else records, out)
    lipschitz(lip, out)
    tradeoff(final, lip, out)
    panel(pnp_dirs, out, root)
    return list(FIGURES)
