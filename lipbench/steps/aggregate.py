"""Aggregation: one long-format results table with provenance, and the papers' summary tables.

Inputs are the tables of ``lipbench pnp`` (``final.csv`` and ``records``) and ``lipbench
lipschitz``, each carrying the denoiser's name and λ (NaN for a denoiser not trained with the
penalty, such as TV). Rows keep the order of the inputs. Outputs (per table: CSV, Markdown, LaTeX):

* ``lipschitz``: denoiser × λ × point × operator → mean and max of ‖∂J‖ and ‖∂Q‖² over the images;
* ``bounds``: denoiser × λ → the interval of its global max ‖∂Q‖²: the worst value found at any point
  (a lower bound; of J, and of J with PnP's clamps) and the certified upper bound, beside the max at
  the test crops (paper 1's protocol);
* ``psnr``: denoiser × λ × kernel × method → PSNR of the last and of the best iterate (mean ± std
  over the images), plus the blurred input;
* ``convergence``: denoiser × λ × method → final c_k, iterations where c_k increased, first k with
  c_k < 1e-4 (median over images; "not reached" if an image never gets there);
* ``denoising``: denoiser × λ → PSNR of J on the noisy test set (BSD68) at the training noise level;
* ``stability`` (with long runs, paper 2's stability figure): denoiser × λ × method × kernel (and
  ``all`` kernels) → the peak of the mean PSNR curve over the images, its iteration, the final
  value and the loss from the peak;
* ``tv_tuning`` (with a TV baseline): the TV weights tried on the tuning images, the chosen one
  marked (its choice is also noted under the PSNR table and is a row of ``results.csv``).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch

import lipbench
from lipbench.plumbing.codehash import code_hash_of
from lipbench.plumbing.command import Command
from lipbench.plumbing.io import read_tables, staged_folder, write_formatted, write_table

C_THRESHOLD = 1e-4
COORDS = ("denoiser", "lam")  # what identifies a denoiser in every input table
ROWS = {"sort": False, "dropna": False}  # a NaN λ (TV) is a row, not dropped


def point_rank(point: str) -> float:
    """The order of the Lipschitz points: the papers' test points, ``y``, ``Aty``, PnP's iterates by
    ``k``, the search (then anything else)."""
    fixed = {"noisy": -5, "tilde": -4, "pnp": -3, "y": -2, "Aty": -1, "search": 1e9}
    if point in fixed:
        return fixed[point]
    return float(point.removeprefix("pnp k=")) if point.startswith("pnp k=") else 2e9


def in_order(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Denoisers in the order of the inputs, points by :func:`point_rank`, then the other ``keys``
    sorted (NaN last)."""
    rank = {name: n for n, name in enumerate(dict.fromkeys(table["denoiser"]))}

    def key(col: pd.Series) -> pd.Series:
        return col.map(rank) if col.name == "denoiser" else col.map(point_rank) if col.name == "point" else col

    return table.sort_values(keys, key=key, kind="stable", na_position="last").reset_index(drop=True)


# the steps whose numbers results.csv holds: its code_hash column is the hash of their code
RESULT_STEPS = tuple(f"lipbench.steps.{s}" for s in ("train", "tune_tv", "lipschitz", "denoise", "pnp", "aggregate"))


def results_code_hash() -> str:
    """The code hash of :data:`RESULT_STEPS` together: a published table whose ``code_hash`` differs
    was made by other code than this one (tests/test_publish.py fails on it)."""
    return code_hash_of(*RESULT_STEPS)


def provenance(config_name: str, config_hash: str = "", device: str = "cpu") -> dict[str, str]:
    """Where the numbers come from: code version and hash, software versions, device, configuration hash."""
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
        "code_hash": results_code_hash(),
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

    keys = ["denoiser", "lam", "method", "image", "kernel"]
    return records.groupby(keys, **ROWS)[["iteration", "c"]].apply(one).reset_index()


def lipschitz_table(lip: pd.DataFrame) -> pd.DataFrame:
    table = lip.groupby(keys := ["denoiser", "lam", "point", "operator"], **ROWS).agg(
        lip_J_mean=("lip_J", "mean"), lip_J_max=("lip_J", "max"),
        lip2_Q_mean=("lip2_Q", "mean"), lip2_Q_max=("lip2_Q", "max"),
    )  # fmt: skip
    return in_order(table.reset_index(), keys)


LIP_OPTIONAL = {"kernel": float("nan"), "start": float("nan"), "upper_lip2_Q": float("nan"), "upper_how": ""}


def bounds_table(lip: pd.DataFrame) -> pd.DataFrame:
    """Per denoiser: max ‖∂Q‖² of J at the test crops (``noisy`` at the images themselves), the worst
    found at any point and element (and where), the worst of ``J_clamped``, and the upper bound."""

    def one(rows: pd.DataFrame) -> pd.Series:
        j = rows[rows.operator == "J"]
        crops = j[(j.point == "noisy") & (j.element == "r0")].lip2_Q
        worst = j.loc[j.lip2_Q.idxmax()] if not j.empty else None
        clamped = rows[rows.operator == "J_clamped"].lip2_Q
        upper = rows.upper_lip2_Q.dropna()
        return pd.Series(
            {
                "crops_max": crops.max() if len(crops) else float("nan"),
                "worst_found": worst.lip2_Q if worst is not None else float("nan"),
                "worst_point": worst.point if worst is not None else "",
                "worst_clamped": clamped.max() if len(clamped) else float("nan"),
                "upper": upper.iloc[0] if len(upper) else float("nan"),
                "upper_how": next((h for h in rows.upper_how if isinstance(h, str) and h), "no bound known"),
            }
        )

    keys = ["denoiser", "lam"]
    table = lip.groupby(keys, **ROWS)[lip.columns.difference(keys).tolist()].apply(one)
    return in_order(table.reset_index(), keys)


def psnr_table(final: pd.DataFrame) -> pd.DataFrame:
    table = final.groupby(keys := ["denoiser", "lam", "kernel", "method"], **ROWS).agg(
        psnr=("psnr", "mean"), psnr_std=("psnr", "std"), psnr_best=("psnr_best", "mean"),
        psnr_best_std=("psnr_best", "std"), ssim=("ssim", "mean"),
    )  # fmt: skip
    blurred = final.drop_duplicates(["image", "kernel"]).groupby("kernel").agg(
        psnr=("psnr_input", "mean"), psnr_std=("psnr_input", "std")
    )  # fmt: skip
    blurred = blurred.assign(denoiser="none", lam=float("nan"), method="blurred input").reset_index()
    return pd.concat([in_order(table.reset_index(), keys), blurred], ignore_index=True)


def convergence_table(stats: pd.DataFrame) -> pd.DataFrame:
    def first(values: pd.Series) -> str:
        return "not reached" if values.isna().any() else f"{values.median():.0f}"

    table = stats.groupby(keys := ["denoiser", "lam", "method"], **ROWS).agg(
        c_final=("c_final", "mean"), c_final_max=("c_final", "max"),
        increases=("increases", "mean"), first_below_1e4=("first_below", first),
    )  # fmt: skip
    return in_order(table.reset_index(), keys)


def stability_table(long_records: pd.DataFrame) -> pd.DataFrame:
    """Per long run and kernel, and over every kernel (``all``): the PSNR curve averaged over the
    images (and kernels), its peak ``psnr_peak`` at ``peak_iteration``, its last value ``psnr_final``
    at ``iterations``, and ``loss`` = peak − final (paper 2: standard PnP drifts away from its peak,
    equivariant PnP holds it)."""
    keys = ["denoiser", "lam", "method"]
    every = long_records.assign(kernel="all")
    rows = []
    for (*coords, kernel), run in pd.concat([long_records, every]).groupby([*keys, "kernel"], **ROWS):
        curve = run.groupby("iteration").psnr.mean()
        rows.append({
            **dict(zip(keys, coords, strict=True)), "kernel": kernel, "iterations": int(curve.index.max()),
            "psnr_peak": curve.max(), "peak_iteration": int(curve.idxmax()), "psnr_final": curve.iloc[-1],
            "loss": curve.max() - curve.iloc[-1],
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=[*keys, "kernel", "iterations", "psnr_peak", "peak_iteration", "psnr_final",
                                        "loss"])  # fmt: skip
    return in_order(table.assign(all_last=table.kernel == "all"), [*keys, "all_last", "kernel"]).drop(
        columns="all_last"
    )


def denoising_table(den: pd.DataFrame) -> pd.DataFrame:
    table = den.groupby(keys := ["denoiser", "lam", "dataset", "sigma"], **ROWS).agg(
        psnr=("psnr", "mean"), psnr_std=("psnr", "std"), psnr_noisy=("psnr_noisy", "mean"), images=("psnr", "size")
    )  # fmt: skip
    return in_order(table.reset_index(), keys)


def tuning_table(tuning: pd.DataFrame) -> pd.DataFrame:
    columns = ["stage", "prox_weight", "psnr", "psnr_std", "chosen"]
    return tuning[columns + [c for c in tuning.columns if c.startswith("tuning_")]]


def tuning_note(tuning: pd.DataFrame) -> str:
    row = tuning[tuning.chosen].iloc[0]
    return (
        f"TV: prox weight w = γλ = {row.prox_weight:.4g}, chosen among {len(tuning)} weights by the mean final PSNR "
        f"({row.psnr:.2f} dB) on the first {row.tuning_images} images of {row.tuning_dataset} (not the test "
        "images), same kernels, noise and iterations: tv_tuning.md."
    )


def long_format(
    final: pd.DataFrame,
    stats: pd.DataFrame,
    lip: pd.DataFrame,
    den: pd.DataFrame,
    prov: dict[str, str],
    tuning: pd.DataFrame | None = None,
    stability: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per measured value: experiment coordinates, ``metric``, ``value`` and provenance (the
    long runs' :func:`stability_table` as ``step`` ``pnp-long``, metrics ``psnr_peak``,
    ``psnr_final`` and ``psnr_loss``)."""
    parts = []
    pnp_keys = ["denoiser", "lam", "method", "image", "kernel"]
    for metrics, table in ((["psnr", "psnr_best", "ssim", "psnr_input"], final), (["c_final", "increases"], stats)):
        part = table.melt(id_vars=pnp_keys, value_vars=metrics, var_name="metric")
        parts.append(part.assign(step="pnp"))
    lip_keys = ["denoiser", "lam", "image", "kernel", "point", "start", "operator", "element"]
    parts.append(lip.melt(id_vars=lip_keys, value_vars=["lip_J", "lip2_Q"], var_name="metric").assign(step="lipschitz"))
    if not den.empty:
        denoise = den.melt(id_vars=["denoiser", "lam", "image"], value_vars=["psnr"], var_name="metric")
        parts.append(denoise.assign(metric="denoise_psnr", step="denoise"))
    if tuning is not None and not tuning.empty:
        chosen = tuning.loc[tuning.chosen, "prox_weight"].iloc[0]
        parts.append(pd.DataFrame([{"denoiser": "tv", "metric": "tv_weight", "value": chosen, "step": "tune"}]))
    if stability is not None and not stability.empty:
        named = stability.rename(columns={"loss": "psnr_loss"})
        long_keys = ["denoiser", "lam", "method", "kernel"]
        metrics = ["psnr_peak", "psnr_final", "psnr_loss"]
        parts.append(named.melt(id_vars=long_keys, value_vars=metrics, var_name="metric").assign(step="pnp-long"))
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
    tuning: Iterable[str | Path] = (),
    long_records: Iterable[str | Path] = (),
) -> dict[str, pd.DataFrame]:
    """Build and write every table (see the module docstring) under ``out``."""
    final = read_tables(finals, [*COORDS, "method", "image", "kernel", "psnr", "psnr_best", "ssim", "psnr_input"])
    recs = read_tables(records, [*COORDS, "method", "image", "kernel", "iteration", "c"])
    lip = read_tables(lipschitz, [*COORDS, "image", "point", "operator", "element", "lip_J", "lip2_Q"])
    lip = lip.assign(**{k: v for k, v in LIP_OPTIONAL.items() if k not in lip})  # tables of earlier versions
    den = read_tables(denoise, [*COORDS, "image", "dataset", "sigma", "psnr", "psnr_noisy"])
    tune = read_tables(
        tuning, ["stage", "prox_weight", "psnr", "psnr_std", "chosen", "tuning_dataset", "tuning_images"]
    )
    stats = convergence_stats(recs)
    long_recs = read_tables(long_records, [*COORDS, "method", "image", "kernel", "iteration", "psnr"])
    tables = {
        "lipschitz": lipschitz_table(lip),
        "bounds": bounds_table(lip),
        "psnr": psnr_table(final),
        "convergence": convergence_table(stats),
    }
    if not den.empty:
        tables["denoising"] = denoising_table(den)
    if not tune.empty:
        tables["tv_tuning"] = tuning_table(tune)
    if not long_recs.empty:
        tables["stability"] = stability_table(long_recs)
    captions = {
        "lipschitz": "Spectral norms of the Jacobians of J and Q = 2J - Id (mean and max over BSD10).",
        "bounds": "Global max of ||dQ||^2: at the test crops, the worst found anywhere (a lower bound; of J and of "
        "J with PnP's clamps) and the certified upper bound.",
        "psnr": "PSNR (dB) of the last and best PnP iterates, mean and std over BSD10.",
        "convergence": "Convergence of PnP: final c_k, iterations where c_k increased, first k with c_k < 1e-4.",
        "denoising": "Denoising PSNR (dB) at the training noise level, mean and std over the test set.",
        "tv_tuning": "TV baseline: mean final PSNR (dB) on the tuning images per prox weight w = γλ.",
        "stability": "Long PnP runs: peak and final of the mean PSNR curve (dB) and the loss from the peak.",
    }
    notes = {"psnr": tuning_note(tune)} if not tune.empty else {}
    for name, table in tables.items():
        write_formatted(table, out / name, captions[name], notes.get(name, ""))
    write_table(long_format(final, stats, lip, den, prov, tune, tables.get("stability")), out / "results.csv")
    return tables


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--finals", nargs="+", required=True, help="final.csv files of `lipbench pnp`")
    p.add_argument("--records", nargs="+", required=True, help="records files of `lipbench pnp`")
    p.add_argument("--lipschitz", nargs="+", required=True, help="tables of `lipbench lipschitz`")
    p.add_argument("--denoise", nargs="*", default=[], help="tables of `lipbench denoise` (default: none)")
    p.add_argument("--tuning", nargs="*", default=[], help="tuning.csv of `lipbench tune-tv` (default: none)")
    p.add_argument("--long-records", nargs="*", default=[], help="records of the long PnP runs (default: none)")
    p.add_argument("--config-name", default="adhoc", help="recorded in the provenance columns (default: %(default)s)")
    p.add_argument("--config-hash", default="", help="hash of the effective configuration (recorded; default: none)")
    p.add_argument("--device", default="cpu", help="device recorded in the provenance columns (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    prov = provenance(args.config_name, args.config_hash, args.device)
    with staged_folder(args.out) as staging:  # all or nothing
        tables = aggregate(
            args.finals, args.records, args.lipschitz, staging, prov, denoise=args.denoise, tuning=args.tuning,
            long_records=args.long_records,
        )  # fmt: skip
    for name, table in tables.items():
        print(f"{name}: {len(table)} rows")
    print(f"wrote {args.out}")
    return 0


COMMAND = Command(run, out="folder for the tables (CSV, Markdown, LaTeX) and results.csv", arguments=_arguments)
