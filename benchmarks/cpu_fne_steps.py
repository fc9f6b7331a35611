"""The CPU-scale FNE study: a penalised fine-tune's PnP gap to TV and max ‖∂Q‖² against its steps.

    python benchmarks/cpu_fne_steps.py [RUN ...]   # RUN: an OUT of fne_finetune_steps.sh, collected first

Each RUN folder (``results/cpu-scale/fne_finetune_steps.sh`` writes it) holds ``stages.jsonl`` and one
``s<steps>/`` per stage with the outputs of ``lipbench lipschitz``, ``pnp`` and ``denoise``; collecting
it appends one JSON line per stage to ``results/cpu-scale/fne-steps-<date>.jsonl``. The table and figure
(``fne-steps.{csv,md,png}``) are then drawn from every such file. The gap is the mean over the kernels
of standard PnP's final PSNR minus TV's in results/cpu; "crops" is max ‖∂Q‖² of J at the noisy BSD10
32×32 crops (results/cpu's grid row "crops"), "D4" the same over their rotations and flips.
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

from lipbench.plumbing.io import atomic_path, atomic_write
from lipbench.steps.aggregate import convergence_stats

FOLDER = Path(__file__).resolve().parent / "results" / "cpu-scale"
TV_TABLE = Path(__file__).resolve().parents[1] / "results" / "cpu" / "tables" / "psnr.csv"
KERNELS = ["levin1", "gaussian_1_6"]


def stage_row(stage: dict) -> dict:
    """One stage's measurements from its folder (``stage`` is a line of the run's stages.jsonl)."""
    folder = Path(stage["dir"])
    lip = pd.read_csv(folder / "lipschitz.csv")
    noisy = lip[(lip.point == "noisy") & (lip.operator == "J")]
    final = pd.read_csv(folder / "pnp" / "final.csv")
    increases = convergence_stats(pd.read_csv(folder / "pnp" / "records.csv")).increases
    den = pd.read_csv(folder / "denoise.csv")
    row = {key: stage[key] for key in ("lam", "lr", "eps", "steps", "stage_train_s")} | {"beta": stage.get("beta", 1.0)}
    setting = f"lam {stage['lam']:g}, lr {stage['lr']:g}, eps {stage['eps']:g}"
    shrunk = f", output times {row['beta']:g}" if row["beta"] != 1 else ""
    row |= {
        "run": f"dncnn10x32 cpu base fine-tuned, {setting}{shrunk}",
        "crops_max": round(float(noisy[noisy.element == "r0"].lip2_Q.max()), 4),
        "d4_max": round(float(noisy.lip2_Q.max()), 4),
        "den_psnr": round(float(den.psnr.mean()), 3),
        "den_noisy": round(float(den.psnr_noisy.mean()), 3),
        "increases": int(increases.sum()),
    }
    row |= {f"pnp_{k}": round(float(final[final.kernel == k].psnr.mean()), 3) for k in KERNELS}
    return row


def collect(runs: list[Path], day: str) -> None:
    path = FOLDER / f"fne-steps-{day}.jsonl"
    old = path.read_text().splitlines() if path.exists() else []
    stages = [json.loads(line) for run in runs for line in (run / "stages.jsonl").read_text().splitlines()]
    new = [json.dumps(stage_row(stage)) for stage in stages]
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
    table["pnp_mean"] = table[[f"pnp_{k}" for k in KERNELS]].mean(axis=1)
    table["gap_to_tv"] = table.pnp_mean - sum(tv.values()) / len(tv)
    table["fne_at_crops"] = table.crops_max <= 1
    table["denoise_gain"] = table.den_psnr - table.den_noisy
    table["setting"] = [
        f"λ = {r.lam:g}, LR {r.lr:g}, ε = {r.eps:g}" + (f", β = {r.beta:g}" if r.beta != 1 else "")
        for r in table.itertuples()
    ]
    columns = ["setting", "steps", "crops_max", "d4_max", "fne_at_crops", "pnp_levin1", "pnp_gaussian_1_6",
               "gap_to_tv", "increases", "den_psnr", "denoise_gain"]  # fmt: skip
    return table[columns].sort_values(["setting", "steps"]).reset_index(drop=True)


def figure(table: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    sns.lineplot(table, x="steps", y="gap_to_tv", hue="setting", marker="o", ax=axes[0], legend=False)
    axes[0].set(xlabel="fine-tune steps", ylabel="PnP PSNR − TV (dB)")
    sns.lineplot(table, x="steps", y="crops_max", hue="setting", marker="o", ax=axes[1], legend=False)
    axes[1].axhline(1.0, ls="--", c="grey", lw=1)
    axes[1].set(xlabel="fine-tune steps", ylabel="max ‖∂Q‖² at the crops")
    sns.scatterplot(table, x="crops_max", y="gap_to_tv", hue="setting", style="fne_at_crops", ax=axes[2], s=50)
    axes[2].axvline(1.0, ls="--", c="grey", lw=1)
    axes[2].set(xlabel="max ‖∂Q‖² at the crops", ylabel="PnP PSNR − TV (dB)")
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
    tv = tv_psnr()
    table = study(tv)
    with atomic_write(FOLDER / "fne-steps.csv", "w") as fh:
        table.to_csv(fh, index=False)
    with atomic_write(FOLDER / "fne-steps.md", "w") as fh:
        fh.write(f"TV (results/cpu): {', '.join(f'{k} {v:.2f} dB' for k, v in tv.items())}\n\n")
        fh.write(table.to_markdown(index=False, floatfmt=".3f") + "\n")
    figure(table, FOLDER / "fne-steps.png")
    print(table.to_string())


if __name__ == "__main__":
    main(sys.argv[1:])
