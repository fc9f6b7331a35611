"""The CPU-scale certified study: the certified denoiser's PnP gap to TV and denoising gain against its
training steps, depth, width and activation (C5's second half along the one family that is firmly
nonexpansive by construction, so max ‖∂Q‖² ≤ 1 at the test crops holds at every size).

    python benchmarks/cpu_certified_scale.py [RUN ...]   # RUN: an OUT of certified_scale.sh, collected first

Each RUN folder (``results/cpu-scale/certified_scale.sh`` writes it) holds ``stages.jsonl`` and one
``s<steps>/`` per stage, evaluated as results/cpu evaluates (:func:`cpu_fne_steps.measurements`);
collecting it appends one JSON line per stage to ``results/cpu-scale/certified-scale-<date>.jsonl``.
Stage 0 is the published certified model (cpu.yaml's, :data:`PUBLISHED`). The table and figure
(``certified-scale.{csv,md,png}``) are then drawn from every such file, with TV's PnP PSNR and
denoising gain from results/cpu as the yardstick.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cpu_fne_steps import FOLDER, KERNELS, append_lines, measurements, tv_psnr

from lipbench.plumbing.io import atomic_path, atomic_write

DENOISING_TABLE = Path(__file__).resolve().parents[1] / "results" / "cpu" / "tables" / "denoising.csv"
PUBLISHED = {"depth": 6, "width": 32, "steps": 3000}  # cpu.yaml's certified model, LR 1e-3


def stage_row(stage: dict) -> dict:
    """One stage's measurements from its folder (``stage``: a line of the run's stages.jsonl)."""
    row = {key: stage[key] for key in ("depth", "width", "lr", "steps", "stage_train_s")}
    row |= {"activation": stage.get("activation", "leaky_relu"), "source": "from scratch"}
    if stage["steps"] == 0:  # the published model, evaluated as a stage
        row |= PUBLISHED | {"lr": 1e-3, "source": "results/cpu"}
    elif stage.get("init"):  # the published model trained further: steps count from its start
        row |= {"steps": PUBLISHED["steps"] + stage["steps"], "source": "results/cpu, trained further"}
    return row | measurements(Path(stage["dir"]))


def collect(runs: list[Path], day: str, folder: Path = FOLDER) -> None:
    new = []
    for run in runs:
        stages = [json.loads(line) for line in (run / "stages.jsonl").read_text().splitlines()]
        new += [json.dumps(stage_row(stage)) for stage in stages]
    append_lines(folder / f"certified-scale-{day}.jsonl", new)


def tv_denoise_gain(table: Path = DENOISING_TABLE) -> float:
    """TV's denoising gain over the noisy input in results/cpu's denoising table."""
    den = pd.read_csv(table)
    tv = den[den.denoiser == "tv"].iloc[0]
    return float(tv.psnr - tv.psnr_noisy)


def study(tv: dict[str, float], folder: Path = FOLDER) -> pd.DataFrame:
    paths = sorted(folder.glob("certified-scale-*.jsonl"))
    rows = [json.loads(line) for path in paths for line in path.read_text().splitlines()]
    table = pd.DataFrame(rows)
    # the lines written before the spline activation existed name no activation: LeakyReLU
    named = table.get("activation", pd.Series(None, index=table.index, dtype=object))
    table["activation"] = named.astype(object).fillna("leaky_relu")
    spline = table.activation.eq("spline").map({True: " spline", False: ""})
    table["model"] = [f"certified {r.depth}×{r.width}{s}" for r, s in zip(table.itertuples(), spline, strict=True)]
    table["pnp_mean"] = table[[f"pnp_{k}" for k in KERNELS]].mean(axis=1)
    table["gap_to_tv"] = table.pnp_mean - sum(tv.values()) / len(tv)
    measured = table.crops_max.le(1).map({True: "yes", False: "no"})
    table["fne_at_crops"] = measured.where(table.crops_max.notna(), "not measured")  # ≤ 1 by construction
    table["denoise_gain"] = table.den_psnr - table.den_noisy
    columns = ["model", "depth", "width", "activation", "source", "steps", "stage_train_s", "crops_max", "d4_max",
               "fne_at_crops", "pnp_levin1", "pnp_gaussian_1_6", "gap_to_tv", "increases", "den_psnr",
               "denoise_gain"]  # fmt: skip
    return table[columns].sort_values(["depth", "width", "activation", "steps", "source"]).reset_index(drop=True)


def figure(table: pd.DataFrame, tv_gain: float, path: Path) -> None:
    """The gap to TV and the denoising gain against steps, one line per size (the published model a
    marker of its own); then the gap against the denoising gain."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    study_rows, published = table[table.source != "results/cpu"], table[table.source == "results/cpu"]
    models = list(dict.fromkeys(table.model))
    palette = dict(zip(models, sns.color_palette(n_colors=len(models)), strict=True))  # one colour per size
    panels = ((axes[0], "gap_to_tv", "PnP PSNR − TV (dB)"), (axes[1], "denoise_gain", "denoising gain (dB)"))
    for ax, y, label in panels:
        sns.lineplot(
            study_rows,
            x="steps",
            y=y,
            hue="model",
            style="source",
            palette=palette,
            marker="o",
            ax=ax,
            legend=ax is axes[0],
        )
        ax.scatter(published.steps, published[y], marker="*", s=120, c="black", label="published", zorder=3)
        ax.set(xlabel="training steps", ylabel=label)
    axes[0].legend(frameon=False, fontsize=7)
    axes[1].axhline(tv_gain, ls="--", c="grey", lw=1)
    axes[1].annotate("TV", (axes[1].get_xlim()[0], tv_gain), fontsize=7, va="bottom")
    sns.scatterplot(
        table, x="denoise_gain", y="gap_to_tv", hue="model", style="source", palette=palette, ax=axes[2], s=50
    )
    axes[2].set(xlabel="denoising gain (dB)", ylabel="PnP PSNR − TV (dB)")
    axes[2].legend(frameon=False, fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    for ax in (axes[0], axes[2]):
        ax.axhline(0.5, ls="--", c="grey", lw=1)
        ax.axhline(0.0, ls=":", c="grey", lw=1)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)


def main(argv: list[str]) -> None:
    if argv:
        collect([Path(a) for a in argv], datetime.date.today().isoformat())
    tv, gain = tv_psnr(), tv_denoise_gain()
    table = study(tv)
    with atomic_write(FOLDER / "certified-scale.csv", "w") as fh:
        table.to_csv(fh, index=False)
    with atomic_write(FOLDER / "certified-scale.md", "w") as fh:
        fh.write(f"TV (results/cpu): {', '.join(f'{k} {v:.2f} dB' for k, v in tv.items())}; ")
        fh.write(f"denoising gain {gain:.2f} dB.\n\n")
        fh.write(table.to_markdown(index=False, floatfmt=".3f") + "\n")
    figure(table, gain, FOLDER / "certified-scale.png")
    print(table.to_string())


if __name__ == "__main__":
    main(sys.argv[1:])
