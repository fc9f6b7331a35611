"""The CPU-scale study: PnP PSNR of a λ = 0 DnCNN against TV, versus training steps and width.

    python benchmarks/cpu_scaling.py     # reads benchmarks/results/cpu-scale/*.jsonl, writes scaling.{csv,md,png}

Each JSON line is one evaluation (``run``, ``depth``, ``width``, ``sigma``, ``steps``, ``den_psnr``,
``den_noisy``, ``pnp_<kernel>``); ``tv-*.jsonl`` holds TV's PnP PSNR per blur noise ``sy`` on the same
crops, kernels and protocol. The gap is the mean over the kernels of the DnCNN's PSNR minus TV's.
Only runs at the paper's noise (training σ = 0.009, blur noise 0.01; gaussian_1_6 0.008) enter.
"""

from __future__ import annotations

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

FOLDER = Path(__file__).resolve().parent / "results" / "cpu-scale"
KERNELS = ["pnp_levin1", "pnp_gaussian_1_6"]
SIGMA, BLUR = 0.009, 0.01


def read(folder: Path = FOLDER) -> tuple[pd.DataFrame, dict[str, float]]:
    rows = [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]
    table = pd.DataFrame(rows)
    tv = table[(table.run == "tv") & (table.sy == BLUR)]
    if tv.empty:
        raise SystemExit(f"no TV row at blur noise {BLUR} in {folder}")
    # the study's rows: λ = 0 trainings evaluated on its protocol (the others record a λ, or no depth)
    runs = table[(table.run != "tv") & table.get("lam", pd.Series(float("nan"), index=table.index)).isna()]
    runs = runs[runs.depth.notna() & runs.run.notna()]  # certified-scale lines name no run
    runs = runs[runs.sigma.fillna(SIGMA) == SIGMA].copy()
    return runs, {k: float(tv[k].iloc[-1]) for k in KERNELS}


def study(runs: pd.DataFrame, tv: dict[str, float]) -> pd.DataFrame:
    """One row per evaluation: the denoising gain and the PnP gap to TV (mean over the kernels)."""
    out = runs[["run", "depth", "width", "steps", "train_s", "den_psnr", "den_noisy", *KERNELS]].copy()
    out["model"] = out.run.str.contains("cert").map({True: "certified", False: "dncnn"})
    out["denoise_gain"] = out.den_psnr - out.den_noisy
    out["pnp_mean"] = out[KERNELS].mean(axis=1)
    out["gap_to_tv"] = out.pnp_mean - sum(tv.values()) / len(tv)
    out[["depth", "width", "steps", "train_s"]] = out[["depth", "width", "steps", "train_s"]].round().astype(int)
    return out.sort_values(["model", "width", "steps"]).reset_index(drop=True)


def figure(table: pd.DataFrame, path: Path) -> None:
    dncnn = table[table.model == "dncnn"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    steps = dncnn[dncnn.width == 32]
    sns.lineplot(steps, x="steps", y="gap_to_tv", marker="o", ax=axes[0])
    axes[0].set(xscale="log", xlabel="training steps (DnCNN-10, width 32)", ylabel="PnP PSNR − TV (dB)")
    widths = dncnn[dncnn.steps == 4000]
    sns.lineplot(widths, x="width", y="gap_to_tv", marker="o", ax=axes[1])
    axes[1].set(xlabel="width (DnCNN-10, 4 000 steps)")
    for ax in axes:
        ax.axhline(1.0, ls="--", c="grey", lw=1, label="target: TV + 1 dB")
        ax.axhline(0.0, ls=":", c="grey", lw=1, label="TV")
        ax.set_ylim(min(-0.3, dncnn.gap_to_tv.min() - 0.1), 1.2)
    axes[1].legend(loc="lower right", frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)


def main() -> None:
    runs, tv = read()
    table = study(runs, tv)
    with atomic_write(FOLDER / "scaling.csv", "w") as fh:
        table.to_csv(fh, index=False)
    with atomic_write(FOLDER / "scaling.md", "w") as fh:
        fh.write(f"TV: {', '.join(f'{k} {v:.2f} dB' for k, v in tv.items())}\n\n")
        fh.write(table.drop(columns=["run"]).to_markdown(index=False, floatfmt=".3f") + "\n")
    figure(table, FOLDER / "scaling.png")
    print(table.to_string())


if __name__ == "__main__":
    main()
