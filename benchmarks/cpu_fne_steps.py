"""The CPU-scale FNE study: a penalised fine-tune's PnP gap to TV and max ‖∂Q‖² against its steps and
against the width of its base.

    python benchmarks/cpu_fne_steps.py [RUN ...]   # RUN: an OUT of fne_finetune_steps.sh, collected first

Each RUN folder (``results/cpu-scale/fne_finetune_steps.sh`` writes it) holds ``stages.jsonl`` and one
``s<steps>/`` per stage with the outputs of ``lipbench lipschitz``, ``pnp`` and ``denoise``; collecting
it appends one JSON line per stage to ``results/cpu-scale/fne-steps-<date>.jsonl``. A RUN that
``fne_width.sh`` wrote (``OUT/ft``) has its base's training beside it (``OUT/base.jsonl``); any other
fine-tunes the published cpu base (DnCNN-10/32, 13 000 steps). Stage 0 is the base itself. The table
and figure (``fne-steps.{csv,md,png}``) are then drawn from every such file. The gap is the mean over the kernels
of standard PnP's final PSNR minus TV's in results/cpu; "crops" is max ‖∂Q‖² of J at the noisy BSD10
32×32 crops (results/cpu's grid row "crops"), "D4" the same over their rotations and flips.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lipbench.plumbing.io import atomic_path, atomic_write
from lipbench.steps.aggregate import convergence_stats

FOLDER = Path(__file__).resolve().parent / "results" / "cpu-scale"
TV_TABLE = Path(__file__).resolve().parents[1] / "results" / "cpu" / "tables" / "psnr.csv"
KERNELS = ["levin1", "gaussian_1_6"]
PUBLISHED_BASE = {"width": 32, "base_steps": 13000}  # results/cpu/models/lam0: cpu.yaml's base


def measurements(folder: Path) -> dict:
    """A stage folder's evaluation as results/cpu's: max ‖∂Q‖² of J at the noisy crops as they are
    ("crops") and over D4 (NaN where the stage has no ``lipschitz.csv``), standard PnP's mean final PSNR
    per kernel, c_k's increases, denoising."""
    lip_csv = folder / "lipschitz.csv"
    lip = pd.read_csv(lip_csv) if lip_csv.exists() else pd.DataFrame(columns=["point", "operator", "element", "lip2_Q"])
    noisy = lip[(lip.point == "noisy") & (lip.operator == "J")]
    final = pd.read_csv(folder / "pnp" / "final.csv")
    increases = convergence_stats(pd.read_csv(folder / "pnp" / "records.csv")).increases
    den = pd.read_csv(folder / "denoise.csv")
    row = {
        "crops_max": round(float(noisy[noisy.element == "r0"].lip2_Q.max()), 4),
        "d4_max": round(float(noisy.lip2_Q.max()), 4),
        "den_psnr": round(float(den.psnr.mean()), 3),
        "den_noisy": round(float(den.psnr_noisy.mean()), 3),
        "increases": int(increases.sum()),
    }
    return row | {f"pnp_{k}": round(float(final[final.kernel == k].psnr.mean()), 3) for k in KERNELS}


def stage_row(stage: dict, base: dict = PUBLISHED_BASE) -> dict:
    """One stage's measurements from its folder (``stage`` is a line of the run's stages.jsonl, ``base``
    the width and training steps of the λ = 0 base it fine-tunes)."""
    row = {key: stage[key] for key in ("lam", "lr", "eps", "steps", "stage_train_s")} | {"beta": stage.get("beta", 1.0)}
    row |= {"width": base["width"], "base_steps": base["base_steps"]}
    setting = f"lam {stage['lam']:g}, lr {stage['lr']:g}, eps {stage['eps']:g}"
    shrunk = f", output times {row['beta']:g}" if row["beta"] != 1 else ""
    name = "cpu base" if base == PUBLISHED_BASE else f"base of {base['base_steps']} steps"
    row["run"] = f"dncnn10x{base['width']} {name} fine-tuned, {setting}{shrunk}"
    return row | measurements(Path(stage["dir"]))


def collect(runs: list[Path], day: str, folder: Path = FOLDER) -> None:
    path = folder / f"fne-steps-{day}.jsonl"
    new = []
    for run in runs:
        base_file = run.parent / "base.jsonl"  # fne_width.sh's base, else the published one
        base = json.loads(base_file.read_text().splitlines()[-1]) if base_file.exists() else PUBLISHED_BASE
        base = {"width": base["width"], "base_steps": base["base_steps"]}
        stages = [json.loads(line) for line in (run / "stages.jsonl").read_text().splitlines()]
        new += [json.dumps(stage_row(stage, base)) for stage in stages]
    append_lines(path, new)


def append_lines(path: Path, new: list[str]) -> None:
    """Append ``new`` to the JSON lines file ``path``; a line already there moves to the end (a run
    collected twice is counted once)."""
    old = path.read_text().splitlines() if path.exists() else []
    keep = [line for line in old if line not in new]
    with atomic_write(path, "w") as fh:
        fh.write("".join(f"{line}\n" for line in keep + new))


def tv_psnr() -> dict[str, float]:
    psnr = pd.read_csv(TV_TABLE)
    tv = psnr[(psnr.denoiser == "tv") & (psnr.method == "pnp")]
    return {k: float(tv[tv.kernel == k].psnr.iloc[0]) for k in KERNELS}


def study(tv: dict[str, float], folder: Path = FOLDER) -> pd.DataFrame:
    paths = sorted(folder.glob("fne-steps-*.jsonl"))
    rows = [json.loads(line) for path in paths for line in path.read_text().splitlines()]
    table = pd.DataFrame(rows)
    for key, value in PUBLISHED_BASE.items():  # lines collected before the width axis
        table[key] = table[key].fillna(value).astype(int) if key in table else value
    table["pnp_mean"] = table[[f"pnp_{k}" for k in KERNELS]].mean(axis=1)
    table["gap_to_tv"] = table.pnp_mean - sum(tv.values()) / len(tv)
    table["fne_at_crops"] = table.crops_max <= 1
    table["denoise_gain"] = table.den_psnr - table.den_noisy
    table["setting"] = [
        f"λ = {r.lam:g}, LR {r.lr:g}, ε = {r.eps:g}" + (f", β = {r.beta:g}" if r.beta != 1 else "")
        for r in table.itertuples()
    ]
    columns = ["width", "base_steps", "setting", "steps", "crops_max", "d4_max", "fne_at_crops", "pnp_levin1",
               "pnp_gaussian_1_6", "gap_to_tv", "increases", "den_psnr", "denoise_gain"]  # fmt: skip
    return table[columns].sort_values(["base_steps", "width", "setting", "steps"]).reset_index(drop=True)


def figure(table: pd.DataFrame, path: Path) -> None:
    """Top: the published base's fine-tunes against their steps; bottom: the width axis, if any."""
    published = (table.width == PUBLISHED_BASE["width"]) & (table.base_steps == PUBLISHED_BASE["base_steps"])
    widths = table[~published]
    rows = 2 if len(widths) else 1
    fig, grid = plt.subplots(rows, 3, figsize=(13, 3.8 * rows), squeeze=False)
    steps = table[published]
    panel_row(grid[0], steps, steps, "steps", "fine-tune steps", "setting", ("setting", "fne_at_crops"))
    if len(widths):
        widths = widths.assign(stage=[f"fine-tuned {s} steps" if s else "base (λ = 0)" for s in widths.steps])
        tuned = widths[widths.steps > 0]
        panel_row(grid[1], widths, tuned, "width", "base width (DnCNN-10)", "stage", ("width", "stage"), True)
        for ax in grid[1][:2]:
            ax.set_xticks(sorted(widths.width.unique()))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)


def panel_row(
    axes: Sequence[Axes], lines: pd.DataFrame, points: pd.DataFrame, x: str, xlabel: str, hue: str,
    scatter: tuple[str, str], lines_legend: bool = False,
) -> None:  # fmt: skip
    """One row: the gap to TV (``lines``) and max ‖∂Q‖² (``points``) against ``x``, one line per ``hue``;
    then the gap against max ‖∂Q‖² (``points``, coloured and marked by ``scatter``)."""
    sns.lineplot(lines, x=x, y="gap_to_tv", hue=hue, marker="o", ax=axes[0], legend=lines_legend)
    axes[0].set(xlabel=xlabel, ylabel="PnP PSNR − TV (dB)")
    if lines_legend:
        axes[0].legend(frameon=False, fontsize=7)
    sns.lineplot(points, x=x, y="crops_max", hue=hue, marker="o", ax=axes[1], legend=False)
    axes[1].axhline(1.0, ls="--", c="grey", lw=1)
    axes[1].set(xlabel=xlabel, ylabel="max ‖∂Q‖² at the crops")
    sns.scatterplot(points, x="crops_max", y="gap_to_tv", hue=scatter[0], style=scatter[1], ax=axes[2], s=50)
    axes[2].axvline(1.0, ls="--", c="grey", lw=1)
    axes[2].set(xlabel="max ‖∂Q‖² at the crops", ylabel="PnP PSNR − TV (dB)")
    axes[2].legend(frameon=False, fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    for ax in (axes[0], axes[2]):
        ax.axhline(0.5, ls="--", c="grey", lw=1)
        ax.axhline(0.0, ls=":", c="grey", lw=1)


def main(argv: list[str]) -> None:
    if argv:
        collect([Path(a) for a in argv], datetime.date.today().isoformat())
    tv = tv_psnr()
    table = study(tv)
    with atomic_write(FOLDER / "fne-steps.csv", "w") as fh:
        table.to_csv(fh, index=False)
    with atomic_write(FOLDER / "fne-steps.md", "w") as fh:
        fh.write(f"TV (results/cpu): {', '.join(f'{k} {v:.2f} dB' for k, v in tv.items())}\n\n")
        fh.write("Steps 0: the λ = 0 base itself, before the fine-tune its row's setting names.\n\n")
        fh.write(table.to_markdown(index=False, floatfmt=".3f") + "\n")
    figure(table, FOLDER / "fne-steps.png")
    print(table.to_string())


if __name__ == "__main__":
    main(sys.argv[1:])
