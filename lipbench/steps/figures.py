"""The papers' figures from the workflow's tables, with one shared style (seaborn, colour-blind
palette, sized for a column): each written as PDF and PNG.

* ``convergence``: c_k vs k (log scale), one curve per denoiser (each λ of the grid), a panel per method;
* ``psnr_iterations``: PSNR vs k, standard vs equivariant PnP, with the grid's λ = 0 denoiser;
* ``lipschitz``: max ‖∂Q‖² over the images vs λ (J and the group mean J_G), line at 1; the other
  denoisers (certified, TV) as horizontal reference lines;
* ``tradeoff``: final PSNR vs max ‖∂Q‖², one point per denoiser and method;
* ``panel``: ground truth, observation and the standard-PnP restoration of every denoiser for one
  image and kernel.

The λ grid is the denoiser with the most λ values; its rows are labelled ``dncnn λ=…``, every other
denoiser by its name.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

import matplotlib as mpl
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from lipbench.data import centre_crop, image_ids, load_images, load_kernel
from lipbench.plumbing.command import Command
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import atomic_path, read_table, read_tables, staged_folder
from lipbench.restoration.metrics import psnr
from lipbench.restoration.physics import Blur, observe
from lipbench.steps.aggregate import point_rank

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


def grid_denoiser(table: pd.DataFrame) -> str:
    """The denoiser trained over the λ grid: the one with the most λ values (the first on a tie)."""
    return str(table.groupby("denoiser", sort=False)["lam"].nunique().idxmax())


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``denoiser_label`` column (``dncnn λ=0.001``, ``certified``, ``tv``) and rows
    in the figures' order: the grid by λ, then the other denoisers as given."""
    grid = grid_denoiser(table)
    pairs = table[["denoiser", "lam"]].drop_duplicates()
    pairs = pd.concat([pairs[pairs.denoiser == grid].sort_values("lam"), pairs[pairs.denoiser != grid]])
    names = [f"{d} λ={lam:g}" if d == grid else d for d, lam in pairs.itertuples(index=False)]
    order = pd.DataFrame(
        {"denoiser": pairs.denoiser.to_numpy(), "lam": pairs["lam"].to_numpy(), "denoiser_label": names}
    )
    order["rank"] = range(len(order))
    merged = table.merge(order, on=["denoiser", "lam"], how="left")
    return merged.sort_values("rank", kind="stable").drop(columns="rank").reset_index(drop=True)


def convergence(records: pd.DataFrame, out: Path) -> None:
    curves = labelled(records).groupby(["denoiser_label", "method", "iteration"], sort=False).c.median().reset_index()
    curves = curves.rename(columns={"denoiser_label": "denoiser"})
    methods = list(dict.fromkeys(curves.method))
    fig, axes = _figure(COLUMN_WIDTH * len(methods), 2.6, len(methods), sharey=True, squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        sns.lineplot(data=curves[curves.method == method], x="iteration", y="c", hue="denoiser", ax=ax)
        ax.legend(title=None, fontsize="x-small")
        ax.set(yscale="log", title=method, xlabel="iteration k", ylabel=r"$c_k = \|x_k - x_{k-1}\| / \|x_0\|$")
    _save(fig, out, "convergence")


def psnr_iterations(records: pd.DataFrame, out: Path) -> None:
    """PSNR vs k with the smallest λ (the long runs when given: paper 2's stability figure)."""
    grid = records[records.denoiser == grid_denoiser(records)]
    base = grid[grid["lam"] == grid["lam"].min()]
    curves = base.groupby(["method", "iteration"]).psnr.mean().reset_index()
    fig, ax = _figure(COLUMN_WIDTH, 2.4)
    sns.lineplot(data=curves, x="iteration", y="psnr", hue="method", ax=ax)
    if curves.iteration.max() >= 1000:
        ax.set_xscale("log")
    title = f"{base.denoiser.iloc[0]}, λ = {base['lam'].min():g}, mean over images × kernels"
    ax.set(xlabel="iteration k", ylabel="PSNR (dB)", title=title)
    _save(fig, out, "psnr_iterations")


def lipschitz(lip: pd.DataFrame, out: Path) -> None:
    grid = grid_denoiser(lip)
    worst = lip.groupby(["denoiser", "lam", "point", "operator"], dropna=False).lip2_Q.max().reset_index()
    others, worst = worst[worst.denoiser != grid], worst[worst.denoiser == grid]
    fig, ax = _figure(COLUMN_WIDTH, 2.4)
    points = sorted(worst.point.unique(), key=point_rank)
    palette = sns.color_palette("viridis" if len(points) > 6 else "deep", len(points))
    sns.lineplot(
        data=worst, x="lam", y="lip2_Q", hue="point", hue_order=points, palette=palette, style="operator",
        markers=True, ax=ax,
    )  # fmt: skip
    ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
    reference = others[others.operator == "J"].groupby("denoiser", sort=False).lip2_Q.max()
    for (name, value), colour in zip(reference.items(), sns.color_palette("dark", len(reference)), strict=True):
        ax.axhline(value, color=colour, lw=0.8, ls=":", label=f"{name}: worst found (J)")
    ax.legend(fontsize="xx-small", bbox_to_anchor=(1.02, 1), loc="upper left")
    lams = sorted(worst["lam"].unique())
    positive = [v for v in lams if v > 0]
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
    ax.set_xlim(left=0)
    ax.set_xticks(lams, [f"{v:g}" for v in lams])
    ax.set(xlabel=f"λ ({grid})", ylabel=r"max $\|\partial Q\|^2$ over images")
    _save(fig, out, "lipschitz")


def tradeoff(final: pd.DataFrame, lip: pd.DataFrame, out: Path) -> None:
    plain = lip[(lip.operator == "J") & (lip.element == "r0")]
    worst = plain.groupby(["denoiser", "lam"], dropna=False).lip2_Q.max().rename("lip2_Q_max").reset_index()
    points = final.groupby(["denoiser", "lam", "method"], dropna=False).psnr.mean().reset_index()
    points = labelled(points.merge(worst, on=["denoiser", "lam"], how="left"))
    points["denoiser"] = points.pop("denoiser_label")
    fig, ax = _figure(COLUMN_WIDTH, 2.4)
    sns.scatterplot(data=points, x="lip2_Q_max", y="psnr", hue="denoiser", style="method", s=40, ax=ax)
    ax.axvline(1.0, color="0.3", lw=0.8, ls="--")
    ax.set(xlabel=r"max $\|\partial Q\|^2$ (J, noisy inputs)", ylabel="final PSNR (dB)")
    ax.legend(fontsize="x-small", bbox_to_anchor=(1.02, 1), loc="upper left")
    _save(fig, out, "tradeoff")


def panel(pnp_dirs: Iterable[Path], out: Path, root: str | None = None) -> None:
    """One image and kernel: ground truth, observation, and the standard-PnP result of each denoiser."""
    runs, coordinates = [], []
    for folder in pnp_dirs:
        settings = json.loads((folder / "settings.json").read_text())
        if settings["equivariance"] == "none":
            runs.append((settings, torch.load(folder / "final.pt", weights_only=True)))
            coordinates.append(read_table(folder / "final.csv")[["denoiser", "lam"]].iloc[:1].assign(run=len(runs) - 1))
    if not runs:
        raise LipbenchError("the image panel needs a standard PnP run (equivariance none): add one to --pnp")
    order = labelled(pd.concat(coordinates, ignore_index=True))
    runs = [(label, *runs[n]) for label, n in zip(order.denoiser_label, order.run, strict=True)]
    _, settings, iterates = runs[0]
    image_id, kernel = next(iter(iterates)).split("/")
    x = load_images(settings["dataset"], root)[image_ids(settings["dataset"], root).index(image_id)]
    x = centre_crop(x, settings["crop"]) if settings["crop"] else x
    sigma = settings["kernel_sigma"].get(kernel, settings["sigma"])
    y = observe(x, Blur(load_kernel(kernel, root)), sigma, image_id, kernel)
    tiles = [("ground truth", x, None), (f"observed ({kernel})", y, psnr(y, x).item())]
    tiles += [(label, it[f"{image_id}/{kernel}"], psnr(it[f"{image_id}/{kernel}"], x).item()) for label, _, it in runs]
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
    records = read_tables([_records(d) for d in pnp_dirs], ["denoiser", "lam", "method", "iteration", "c", "psnr"])
    final = read_tables([d / "final.csv" for d in pnp_dirs], ["denoiser", "lam", "method", "psnr"])
    lip = read_tables(lipschitz_tables, ["denoiser", "lam", "point", "operator", "element", "lip2_Q"])
    convergence(records, out)
    long_records = [read_table(_records(d)) for d in long_dirs or []]
    psnr_iterations(pd.concat(long_records, ignore_index=True) if long_records else records, out)
    lipschitz(lip, out)
    tradeoff(final, lip, out)
    panel(pnp_dirs, out, root)
    return list(FIGURES)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pnp", nargs="+", required=True, help="output folders of `lipbench pnp`")
    p.add_argument("--lipschitz", nargs="+", required=True, help="tables of `lipbench lipschitz`")
    p.add_argument("--long", nargs="*", default=[], help="folders of long PnP runs (PSNR-vs-iteration figure)")


def run(args: argparse.Namespace) -> int:
    with staged_folder(args.out) as staging:  # all or nothing
        names = make_figures(
            [Path(d) for d in args.pnp], [Path(p) for p in args.lipschitz], staging, args.root,
            [Path(d) for d in args.long],
        )  # fmt: skip
    print(f"wrote {', '.join(names)} (PDF and PNG) to {args.out}")
    return 0


COMMAND = Command(run, out="folder for the PDFs and PNGs", root=True, arguments=_arguments)
