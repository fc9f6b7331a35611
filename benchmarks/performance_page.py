"""Generate ``docs/performance.md`` from the saved measurements (never by hand):

    python benchmarks/performance_page.py            # reads benchmarks/results/, writes docs/performance.md

Inputs, found under ``--results``: pytest-benchmark JSON files (the suite on a CPU or a GPU, the
deepinv reference, the scaling and end-to-end runs), ``gpu-measure*.json`` (benchmarks/gpu_measure.py,
merged in name order, later sections replacing earlier ones) and ``linearization-profile*.json``.
Ratios divide medians measured side by side in one run; their range divides the quartiles
(q1 ÷ q3 to q3 ÷ q1), so it shows the run's noise.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paper_estimate

from lipbench.plumbing.io import atomic_write
from lipbench.workflow.rules import read_effective

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# (quantity, goal, benchmark-name pattern, kind): kind "ratio" (÷ group baseline) or "ratio_extra"
GOALS = [
    ("power iteration ÷ forward+backward, fast path", 1.0, r"test_linearization\[.*-fast-", "ratio"),
    ("power iteration ÷ forward+backward, generic autograd path", 1.4, r"test_linearization\[.*-autograd-", "ratio"),
    ("power iteration ÷ forward+backward, double-backward reference", None, r"test_double_backward_reference",
     "ratio"),
    ("training step with the penalty (10 power iterations) ÷ plain step", 10.0, r"test_penalty_step_10_power",
     "ratio"),
    ("peak memory of the penalty step ÷ plain step", 3.0, r"test_penalty_step_peak_memory", "ratio_extra"),
    ("PnP iteration ÷ denoiser forward, standard", 1.05, r"test_pnp_iterations\[standard\]", "ratio"),
    ("PnP iteration ÷ denoiser forward, equivariant random", 1.05, r"test_pnp_iterations\[equivariant-random\]",
     "ratio"),
    ("PnP iteration ÷ denoiser forward, equivariant mean (8 forwards)", 8.4,
     r"test_pnp_iterations\[equivariant-mean\]", "ratio"),
]  # fmt: skip


def _fmt_time(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else _fmt_time(seconds)


def load_results(folder: Path) -> tuple[list[tuple[str, dict]], dict[str, Any], list[tuple[str, dict]]]:
    """(pytest-benchmark runs, merged gpu-measure sections, linearization profiles), by relative name."""
    runs, gpu, profiles = [], {}, []
    for path in sorted(folder.rglob("*.json")):
        name, data = path.relative_to(folder).as_posix(), json.loads(path.read_text())
        if "benchmarks" in data and "machine_info" in data:
            runs.append((name, data))
        elif path.name.startswith("gpu-measure"):
            gpu.update({k: v for k, v in data.items() if k != "elapsed_s"})
        elif path.name.startswith("linearization-profile"):
            profiles.append((name, data))
    return runs, gpu, profiles


def run_label(name: str, data: dict) -> str:
    info = data["machine_info"]
    device = info.get("device", "cpu")
    where = f"{info.get('cpu', {}).get('count', '?')} CPU cores" if device == "cpu" else device
    return f"{where}, torch {info.get('torch_version', '?')} (`{name}`)"


def ratios(data: dict) -> list[dict[str, Any]]:
    """Every benchmark's median ÷ its group baseline's median, with the quartile range."""
    groups: dict[str, list[dict]] = {}
    for b in data["benchmarks"]:
        groups.setdefault(b["group"], []).append(b)
    rows = []
    for group, benches in groups.items():
        base = next((b for b in benches if b["extra_info"].get("role") == "baseline"), None)
        for b in benches:
            s, extra = b["stats"], b["extra_info"]
            row = {"group": group, "name": b["name"], "median": s["median"], "iqr": s["iqr"], "goal": extra.get("goal"),
                   "is_baseline": b is base, "ratio": None, "low": None, "high": None}  # fmt: skip
            if "ratio" in extra:
                row["ratio"] = extra["ratio"]
            elif base is not None and b is not base:
                bs = base["stats"]
                row.update(ratio=s["median"] / bs["median"], low=s["q1"] / bs["q3"], high=s["q3"] / bs["q1"])
            rows.append(row)
    return rows


WALL_GOALS_H = {"cpu": 3.0}  # configuration → its wall-time goal on 2 CPU cores (issue 24)


def load_walls(folder: Path) -> list[tuple[str, dict]]:
    """``benchmarks/run_wall.py``'s records of whole-configuration runs (``end-to-end/*-config-*.json``)."""
    return [(p.relative_to(folder).as_posix(), json.loads(p.read_text()))
            for p in sorted(folder.glob("end-to-end/*-config-*.json"))]  # fmt: skip


def wall_rows(walls: list[tuple[str, dict]], columns: int) -> list[str]:
    lines = []
    for name, record in walls:
        goal = WALL_GOALS_H.get(record["run"])
        parts = len(record["invocations"])
        verdict = "" if goal is None else (" met" if record["wall_s"] <= goal * 3600 else " **missed**")
        lines.append(f"| {record['run']} configuration end to end, `snakemake --cores 2`, {parts} invocation(s) "
                     f"(`{name}`) | {'≤ ' + str(goal) + ' h' if goal else '—'} | {_hours(record['wall_s'])}{verdict} |"
                     + " |" * (columns - 1))  # fmt: skip
    return lines


def goals_table(runs: list[tuple[str, dict]], walls: list[tuple[str, dict]] = ()) -> list[str]:
    suite = [(n, d) for n, d in runs if any(b["name"].startswith("test_linearization") for b in d["benchmarks"])]
    head = "| quantity | goal | " + " | ".join(run_label(n, d) for n, d in suite) + " |"
    lines = [head, "|---|---|" + "---|" * len(suite)]
    for quantity, goal, pattern, _ in GOALS:
        cells = []
        for _, data in suite:
            values = [r["ratio"] for r in ratios(data) if re.search(pattern, r["name"]) and r["ratio"] is not None]
            if not values:
                cells.append("not measured")
                continue
            text = f"{min(values):.2f}×" if len(values) == 1 else f"{min(values):.2f}–{max(values):.2f}×"
            if goal is not None:
                text += " met" if max(values) <= goal else (" **missed**" if min(values) > goal else " partly met")
            cells.append(text)
        lines.append(f"| {quantity} | {'≤ ' + str(goal) if goal else '—'} | " + " | ".join(cells) + " |")
    e2e = [(n, d) for n, d in runs if any(b["name"] == "test_end_to_end[quick]" for b in d["benchmarks"])]
    for name, data in e2e:
        b = next(b for b in data["benchmarks"] if b["name"] == "test_end_to_end[quick]")
        verdict = "met" if b["stats"]["median"] <= 15 * 60 else "**missed**"
        lines.append(f"| quick configuration end to end, `snakemake --cores 2` ({run_label(name, data)}) | ≤ 15 min | "
                     f"{_fmt_time(b['stats']['median'])} {verdict} |" + " |" * (len(suite) - 1))  # fmt: skip
    if not e2e:
        lines.append("| quick configuration end to end | ≤ 15 min | not measured |" + " |" * (len(suite) - 1))
    return [*lines, *wall_rows(list(walls), len(suite)), ""]


def run_tables(name: str, data: dict) -> list[str]:
    info = data["machine_info"]
    cpu = info.get("cpu", {})
    lines = [
        f"### {run_label(name, data)}",
        "",
        f"{data.get('datetime', '?')}; {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores; Python "
        f"{info.get('python_version', '?')}; {info.get('torch_threads', '?')} torch threads; device "
        f"{info.get('device', 'cpu')}; pytest-benchmark {data.get('version', '?')}.",
        "",
    ]
    rows = ratios(data)
    for group in dict.fromkeys(r["group"] for r in rows):
        lines += [f"**{group}**", "", "| benchmark | median | IQR | ratio (range) | goal |", "|---|---|---|---|---|"]
        for r in (r for r in rows if r["group"] == group):
            if r["is_baseline"]:
                ratio = "baseline"
            elif r["ratio"] is None:
                ratio = "—"
            elif r["low"] is None:
                ratio = f"{r['ratio']:.2f}× (measured in the benchmark)"
            else:
                ratio = f"{r['ratio']:.2f}× ({r['low']:.2f}–{r['high']:.2f})"
            goal = "" if r["goal"] is None or r["ratio"] is None else (
                f"≤ {r['goal']}: {'met' if r['ratio'] <= r['goal'] else '**missed**'}")  # fmt: skip
            lines.append(f"| {r['name']} | {_fmt_time(r['median'])} | {_fmt_time(r['iqr'])} | {ratio} | {goal} |")
        lines.append("")
    return lines


def scaling_table(runs: list[tuple[str, dict]]) -> list[str]:
    lines = []
    for name, data in runs:
        points: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for b in data["benchmarks"]:
            extra = b["extra_info"]
            if "stage" in extra:
                points.setdefault((extra["stage"], extra["axis"]), []).append((extra["x"], b["stats"]["median"]))
        if not points:
            continue
        lines += [f"Measured on {run_label(name, data)}; cost ∝ x^α fitted by least squares on logs, and the "
                  "straight line a + b·x (a: the fixed part).", "",
                  "| stage | x | medians | α | a + b·x |", "|---|---|---|---|---|"]  # fmt: skip
        for (stage, axis), pts in points.items():
            pts.sort()
            x, t = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
            alpha = np.polyfit(np.log(x), np.log(t), 1)[0] if len(pts) >= 2 else math.nan
            slope, fixed = np.polyfit(x, t, 1) if len(pts) >= 2 else (math.nan, math.nan)
            medians = ", ".join(f"{int(a)}: {_fmt_time(b)}" for a, b in pts)
            line = f"{_fmt_time(fixed)} + {slope:.3g} s·x" if fixed >= 0 else f"{slope:.3g} s·x (fitted a < 0)"
            lines.append(f"| {stage} | {axis} | {medians} | {alpha:.2f} | {line} |")
        lines.append("")
        # the batch sweep runs at 256 × 256: its batch-1 point repeats the pixel sweep's 65536 point
        same = [(dict(points[s, "pixels"]).get(65536), dict(points[s, "batch"]).get(1)) for s, a in points
                if a == "pixels" and (s, "batch") in points]  # fmt: skip
        spread = [max(a, b) / min(a, b) for a, b in same if a and b]
        if spread:
            lines += [f"The same shape (one 256×256 image) timed in both sweeps differs by up to "
                      f"{max(spread):.2f}×: the run's noise. On this CPU the exponents above 1 presumably come from "
                      "activations outgrowing the caches (32 channels × 256² × 4 B = 8 MiB per layer at batch 1): "
                      "the FLOPs themselves grow linearly.", ""]  # fmt: skip
    return lines


def gpu_sections(gpu: dict[str, Any], profiles: list[tuple[str, dict]], paper: dict[str, Any]) -> list[str]:
    env = gpu["environment"]
    lines = [f"Measured by `benchmarks/gpu.sh` on {env.get('name')} (torch {env.get('torch')}, CUDA {env.get('cuda')}, "
             f"cuDNN {env.get('cudnn')}); raw files in `benchmarks/results/h100-2026-11-26/`.", ""]  # fmt: skip
    if "throughput" in gpu:
        t = gpu["throughput"]
        lines += [f"**DnCNN-20/64 forward**, batch {t['batch']} ({t['tflop_per_forward']:.2f} TFLOP):", "",
                  "| precision | median | TFLOP/s |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {k} | {_fmt_time(t[k]['median'])} | {t[k]['tflops']:.1f} |" for k in ("float32", "tf32", "bf16")]
        lines.append("")
    if "training_options" in gpu:
        o = gpu["training_options"]
        lines += [f"**Training step** (DnCNN-20/64, {gpu['sizes']['batch']}×{gpu['sizes']['patch']}² patches; "
                  "penalty: 5 power iterations):", "",
                  "| variant | plain step | penalty step | penalty ÷ plain | peak memory (plain / penalty) |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for v in dict.fromkeys(k.split("/", 1)[1] for k in o):
            a, b = o[f"plain/{v}"], o[f"penalty/{v}"]
            ratio, peaks = b["median"] / a["median"], f"{a['peak_mib']:.0f} / {b['peak_mib']:.0f} MiB"
            lines.append(f"| {v} | {_fmt_time(a['median'])} | {_fmt_time(b['median'])} | {ratio:.2f}× | {peaks} |")
        lines.append("")
    if "pnp_options" in gpu:
        o = gpu["pnp_options"]
        lines += [f"**PnP iteration**, batch {o['batch']} (one kernel per image), ÷ a denoiser forward of the same "
                  "precision:", "", "| variant | 5 iterations | ÷ forward | note |", "|---|---|---|---|"]  # fmt: skip
        for k, v in o.items():
            if isinstance(v, dict) and "per_iteration_over_forward" in v:
                note = f"first call (compilation) {v['first_call_s']:.1f} s" if "first_call_s" in v else ""
                lines.append(f"| {k} | {_fmt_time(v['median'])} | {v['per_iteration_over_forward']:.3f}× | {note} |")
            elif isinstance(v, dict) and "error" in v:
                lines.append(f"| {k} | failed: {v['error']} | | |")
        lines.append("")
    if "pinned" in gpu:
        p = gpu["pinned"]
        lines += [f"**Pinned memory**: copying a training batch to the GPU takes "
                  f"{p['copy_pinned']['median'] * 1e6:.0f} µs from pinned memory and "
                  f"{p['copy_pageable']['median'] * 1e6:.0f} µs from pageable memory; drawing the batch "
                  f"{_fmt_time(p['sample_pinned']['median'])} / {_fmt_time(p['sample_pageable']['median'])}.",
                  ""]  # fmt: skip
    if "precision_effects" in gpu:
        e = gpu["precision_effects"]
        lines += ["**What reduced precision changes** (DnCNN-20/64 with Kaiming-normal weights, two noisy BSD10 "
                  "images, the paper's tolerance 1e-4):", "",
                  f"- TF32 moves ‖∂J‖ by up to {e['J_tf32_rel_diff']:.2%} and ‖∂Q‖ by up to {e['Q_tf32_rel_diff']:.2%} "
                  f"(σ ≈ {min(e['J_sigma']):.2f}–{max(e['Q_sigma']):.2f}; {min(e['J_iterations'] + e['Q_iterations'])}–"
                  f"{max(e['J_iterations'] + e['Q_iterations'])} iterations to the tolerance).",
                  "- bf16 autocast moves the training penalty's σ² by up to "
                  f"{e['penalty_sigma2_bf16_rel_diff_max']:.1%} (σ² up to {e['penalty_sigma2_float32_max']:.0f}, "
                  "50 power iterations, 100 patches)."]  # fmt: skip
        if "slice" in gpu and "tf32_psnr_abs_diff_max_db" in gpu["slice"]:
            lines.append(f"- TF32 moves the PSNR of 50 PnP iterations on BSD10 × 9 kernels by at most "
                         f"{gpu['slice']['tf32_psnr_abs_diff_max_db']:.1e} dB.")  # fmt: skip
        lines.append("")
    for name, data in profiles:
        rows = data["rows"]
        lines += [f"**Fast-path products** (`{name}`, float32):", "",
                  "| batch | forward | J u | Jᵀ w | conv2d | conv_transpose2d | conv2d, flipped kernel |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for batch, r in rows.items():
            lines.append(f"| {batch} | " + " | ".join(_fmt_time(v) for v in r.values()) + " |")
        lines.append("")
    return lines


H100_TF32_PEAK = 495.0  # TFLOP/s, dense TF32 tensor cores of an H100 SXM (NVIDIA's datasheet)
JOB_OVERHEAD_S = 10.0  # per GPU job: process start, imports, CUDA context, data loading (assumed, not measured)
PAPER_GOALS = {1: 4 * 3600}  # GPUs: seconds (issue 13); one GPU per λ: 1 h, added in paper_section


def solver_products(runs: list[tuple[str, dict]]) -> dict[str, Any] | None:
    """Products to the tolerance per solver from the CPU side-by-side run (``test_spectral_solvers``):
    ``{"power": mean, "lanczos": mean, "ratio": lanczos ÷ power, "sigma_rel_diff": max |σ_L/σ_P − 1|, "run"}``."""
    for name, data in runs:
        by = {b["name"]: b["extra_info"] for b in data["benchmarks"] if b["name"].startswith("test_products_to_tol")}
        if len(by) == 2:
            power, lanczos = by["test_products_to_tolerance[power]"], by["test_products_to_tolerance[lanczos]"]
            mean = {k: float(np.mean(v["J_products"] + v["Q_products"])) for k, v in (("power", power),
                                                                                   ("lanczos", lanczos))}  # fmt: skip
            diff = max(
                abs(a / b - 1) for op in "JQ" for a, b in zip(lanczos[f"{op}_sigma"], power[f"{op}_sigma"], strict=True)
            )
            return {**mean, "ratio": mean["lanczos"] / mean["power"], "sigma_rel_diff": diff, "run": name}
    return None


def _plan_lines(work: list, per_lambda: int, goal_per_lambda_s: float) -> list[str]:
    rows = []
    for gpus in sorted({1, 2, 4, per_lambda}):
        plan = paper_estimate.plan(work, gpus)
        goal = PAPER_GOALS.get(gpus, goal_per_lambda_s if gpus == per_lambda else None)
        verdict = "" if goal is None else (" met" if plan.makespan_s <= goal else " **missed**")
        goal_text = "" if goal is None else f"≤ {_hours(goal)}"
        note = " (one per λ and extra denoiser)" if gpus == per_lambda else ""
        rows.append(f"| {gpus}{note} | {_hours(plan.makespan_s)}{verdict} | {goal_text} | "
                    f"{_hours(plan.lower_bound_s)} | {plan.busy_s / (gpus * plan.makespan_s):.0%} |")  # fmt: skip
    head = "| GPUs | wall time | goal | no schedule ends before (critical path, or the work ÷ GPUs) | GPUs busy |"
    return [head, "|---|---|---|---|---|", *rows, ""]


def paper_section(gpu: dict[str, Any], paper: dict[str, Any], runs: list[tuple[str, dict]],
                  gpu_slice: dict[str, Any]) -> list[str]:  # fmt: skip
    unit, effects, t = gpu["slice"], gpu["precision_effects"], gpu["throughput"]
    solver = paper["lipschitz"].get("solver", "lanczos")
    power_iterations, per_image = paper_estimate.lipschitz_unit(effects)
    products = solver_products(runs)
    if solver == "power":
        iterations, source = power_iterations, "measured on the H100"
    elif f"J_{solver}_iterations" in effects:
        iterations, per_image = paper_estimate.lipschitz_unit(effects, solver)
        source = "measured on the H100"
    else:
        iterations = power_iterations * products["ratio"]
        source = (f"power iteration's {power_iterations:.0f}, measured on the H100, × {products['ratio']:.2f}, "
                  f"Lanczos ÷ power products at 96×96 on 2 CPU cores (`{products['run']}`; on full images the ratio "
                  "is presumably lower still: it fell from 0.66 at 48×48 to 0.24 at 96×96)")  # fmt: skip
    speedup = unit["pnp_standard_iteration_s"] / unit["pnp_standard-tf32_iteration_s"]
    full_unit = {**unit, "lipschitz_image_iteration_s": per_image, "pnp_tf32_speedup": speedup}
    units = paper_estimate.forward_units(paper, iterations)
    flops = paper_estimate.from_flops(
        paper, {"train": t["tf32"]["tflops"], "eval": t["float32"]["tflops"], "tf32": t["tf32"]["tflops"]}, iterations
    )
    measured = paper_estimate.from_slice(paper, full_unit, iterations)
    before = paper_estimate.from_slice(
        {**paper, "pnp": {**paper["pnp"], "tf32": False, "long_runs": {**paper["pnp"]["long_runs"], "kernels": None}}},
        full_unit,
        power_iterations,
    )  # the configuration as it was: float32 PnP, power iteration, the long runs on 9 kernels
    total, dominant = sum(measured.values()), max(measured, key=measured.get)
    per_lambda = len(paper["train"]["lambdas"]) + len(paper.get("denoisers", {}))
    work = paper_estimate.jobs(paper, full_unit, iterations)
    lines = [
        f"Unit costs from the timed slice on {gpu['environment'].get('name')} (lipbench's own `train`, `run_pnp` and "
        f"spectral norms at the paper's shapes: {gpu['sizes']['steps']} base and {gpu['sizes']['steps']} penalty "
        f"steps, {gpu['sizes']['pnp_iters']} PnP iterations over BSD10 × 9 kernels, …), and from FLOP counts "
        f"(a unit is one DnCNN-20/64 forward on a 481×321 image, {paper_estimate.FORWARD_TFLOP:.3f} TFLOP) at the "
        f"measured rates ({t['tf32']['tflops']:.0f} TFLOP/s in TF32 for training and, with `pnp.tf32`, for PnP; "
        f"{t['float32']['tflops']:.0f} in float32 elsewhere). Spectral norms by {solver}: {iterations:.0f} products "
        f"to the tolerance ({source}). PnP in TF32: {speedup:.2f}× faster per iteration in the slice (float32 ÷ "
        "TF32, standard method; assumed the same for the others).",
        "",
        "| stage | forward units | from FLOP counts | from the slice | before (float32 PnP, power iteration, "
        "long runs on 9 kernels) |",
        "|---|---|---|---|---|",
        *[
            f"| {k} | {units[k]:.3g} | {_hours(flops[k])} | {_hours(measured[k])} | {_hours(before[k])} |"
            for k in measured
        ],
        f"| **total** | {sum(units.values()):.3g} | {_hours(sum(flops.values()))} | **{_hours(total)}** | "
        f"{_hours(sum(before.values()))} |",
        "",
        f"The largest stage is {dominant} ({measured[dominant] / total:.0%}). The plan per GPU count (each workflow "
        "job on one GPU, list scheduling as Snakemake does, the fine-tunes after the base model):",
        "",
        *_plan_lines(work, per_lambda, 3600),
        f"Both goals are missed. The work is {sum(units.values()) * paper_estimate.FORWARD_TFLOP / 1e3:.0f} PFLOP: "
        f"all of it at the best rate measured within the bounds (TF32, {t['tf32']['tflops']:.0f} TFLOP/s) would take "
        f"{_hours(sum(units.values()) * paper_estimate.FORWARD_TFLOP / t['tf32']['tflops'])} on one GPU, and with "
        "one GPU per λ the certified denoiser's chain (training, then its group-mean PnP) and each λ's (base, "
        "fine-tune, PnP) are each longer than an hour. Reaching 4 h needs faster kernels at these shapes (the "
        f"H100 ran the forward at {t['tf32']['tflops'] / H100_TF32_PEAK:.0%} of its {H100_TF32_PEAK:.0f} TFLOP/s "
        "dense TF32 peak), a reduced precision measured within the bounds, or a smaller protocol.",
        "",
        "What changed, each within the bounds (PSNR within 0.01 dB, Lipschitz values within 0.1 %):",
        "",
        f"- spectral norms by Lanczos on JᵀJ (`lipschitz.solver: lanczos`, the default): "
        f"{products['ratio']:.2f}× the products of power iteration at 96×96, σ within "
        f"{products['sigma_rel_diff']:.1e} of it (Lanczos' is the larger: both are lower bounds);"
        if products
        else "- spectral norms by Lanczos (not measured side by side yet);",
        f"- `pnp.tf32: true` for the tables: {speedup:.2f}× per PnP iteration, PSNR moved by at most "
        f"{unit['tf32_psnr_abs_diff_max_db']:.1e} dB over 50 iterations (the long runs stay in float32: 10 001 "
        "iterations of an unstable iteration are not covered by that measurement);",
        "- the long runs on paper 2's own kernels (Levin's first and a 9×9 Gaussian of std 1) instead of paper 1's 9.",
        "",
        "Not turned on: TF32 in the spectral norms (σ moved by up to 0.84 %, above 0.1 %), bf16 in training (the "
        "penalty's σ² moved by 7.8 %), `torch.compile` and `channels_last` for PnP (slower, below). What would cut "
        "the rest: dropping the group-mean method (8 forwards per iteration) from `pnp.methods`, fewer λ values, "
        "fewer fine-tuning steps, or a measured bf16 PnP.",
        "",
    ]
    if gpu_slice:
        at_crop = products["lanczos"] if products else iterations  # the CPU run's crop is the slice's: 96×96
        slice_work = paper_estimate.jobs(gpu_slice, full_unit, at_crop)
        serial = paper_estimate.plan(slice_work, 1)
        overhead = JOB_OVERHEAD_S * len(slice_work)
        lines += [
            "### `config/gpu-slice.yaml` on one H100: estimate",
            "",
            f"The same unit costs give {_hours(serial.makespan_s)} of GPU work in {len(slice_work)} GPU jobs, run one "
            f"after another, plus {JOB_OVERHEAD_S:.0f} s per job of start-up (assumed): "
            f"{_hours(serial.makespan_s + overhead)} "
            "against the budget of 8 min. TV's tuning, PGD and spectral norms are not counted (elementwise work, "
            "not timed on a GPU). Its spectral norms take the Lanczos products measured at 96×96 on the CPU, and "
            "a step's time ∝ pixels. Not run on a GPU yet.",
            "",
        ]  # fmt: skip
    return lines


def lipschitz_jobs(folder: Path = REPO / "results" / "quick" / "benchmarks" / "lipschitz") -> list[str]:
    """The quick run's Lipschitz jobs (Snakemake's benchmark files): every point kind, the search included."""
    files = sorted(folder.glob("*.tsv"))
    if not files:
        return []
    quick = read_effective(REPO / "config" / "config.yaml")["lipschitz"]
    lines = [
        f"Published quick run (`results/quick/benchmarks/lipschitz/`), one job per denoiser on 2 CPU cores: points "
        f"{', '.join(quick['points'])} on {quick['crop']}×{quick['crop']} BSD10 crops (iterates "
        f"{', '.join(map(str, quick['iterates']))} and the last; the search: {quick['search_steps']} steps from "
        f"{quick['search_starts']} points and {quick['search_random']} uniform images), every one evaluated at "
        "tolerance " + f"{quick['tol']:g}.",
        "",
        "| denoiser | wall time | max RSS |",
        "|---|---|---|",
    ]
    for path in files:
        row = dict(zip(*(line.split("\t") for line in path.read_text().splitlines()[:2]), strict=True))
        lines.append(f"| {path.stem} | {_fmt_time(float(row['s']))} | {float(row['max_rss']):.0f} MB |")
    return [*lines, ""]


def render(folder: Path = RESULTS, paper_path: Path = REPO / "config" / "paper.yaml") -> str:
    runs, gpu, profiles = load_results(folder)
    paper = read_effective(paper_path)
    slice_path = paper_path.with_name("gpu-slice.yaml")
    gpu_slice = read_effective(slice_path) if slice_path.is_file() else {}
    suite = [(n, d) for n, d in runs if any("stage" not in b["extra_info"] for b in d["benchmarks"])]
    lines = [
        "# Performance",
        "",
        "Generated by `python benchmarks/performance_page.py` from the saved measurements in `benchmarks/results/`;",
        "do not edit by hand. Ratios divide medians measured side by side in one run; a range divides the",
        "quartiles (q1 ÷ q3 to q3 ÷ q1) and so shows the run's noise. CPU runs: `pytest benchmarks",
        "--benchmark-json …`; GPU runs: `benchmarks/gpu.sh` (CUDA tests, the suite on CUDA, GPU options, a",
        "timed slice of `config/paper.yaml`).",
        "",
        "## Goals",
        "",
        *goals_table(suite, load_walls(folder)),
    ]
    if "pnp_options" in gpu:
        o = gpu["pnp_options"]
        lines += [f"On the H100, the suite's PnP benchmark (one 321×481 image, DnCNN-17) misses 1.05: at batch 1 the "
                  "blur's FFTs, the records and the launches weigh against a 7 ms forward. At the paper's batch "
                  f"({o['batch'][0]} images) a PnP iteration costs {o['float32']['per_iteration_over_forward']:.3f}× "
                  "a forward (GPU options below).", ""]  # fmt: skip
    if {"slice", "precision_effects", "throughput", "pnp_options"} <= gpu.keys():
        lines += ["## `config/paper.yaml` on one H100: estimate", "", *paper_section(gpu, paper, runs, gpu_slice)]
    if gpu:
        lines += ["## GPU options: defaults chosen by measurement", "",
                  "Defaults: training in TF32 with `channels_last`, no autocast; PnP, spectral norms and metrics in "
                  "full float32, NCHW, not compiled, cuDNN autotuning off; pinned training batches.", "",
                  *gpu_sections(gpu, profiles, paper)]  # fmt: skip
    scaling = scaling_table(runs)
    if scaling:
        lines += ["## Scaling", "", *scaling,
                  "The workflow grows linearly with the λ grid: a fixed part (the base model, the long runs, "
                  "aggregation, figures, report) plus one fine-tune, Lipschitz, denoising and PnP job per λ and "
                  "method (b above). Within a PnP job, kernels batch with the images: the batch axis above, one "
                  "kernel per image.", ""]  # fmt: skip
    jobs = lipschitz_jobs()
    if jobs:
        lines += ["## Lipschitz evaluation where PnP goes, at quick scale", "", *jobs]
    lines += ["## Runs", ""]
    for name, data in suite:
        lines += run_tables(name, data)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of saved measurements")
    parser.add_argument("--paper", type=Path, default=REPO / "config" / "paper.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md")
    args = parser.parse_args(argv)
    page = render(args.results, args.paper)
    with atomic_write(args.out, "w") as fh:
        fh.write(page)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
