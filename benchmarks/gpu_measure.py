"""GPU measurements behind ``docs/performance.md`` (run by ``benchmarks/gpu.sh``; ``--smoke`` runs every
code path at toy sizes, on any device, in seconds):

1. ``throughput``: DnCNN-20/64 forward on a BSD10-sized batch in float32, TF32 and bf16 (TFLOP/s);
2. ``training_options``: plain and penalty steps at the paper's batch for TF32, bf16 autocast, channels_last;
3. ``pnp_options``: one PnP iteration at a BSD10 batch for TF32, channels_last, cuDNN autotuning and
   ``torch.compile`` (with its compile time);
4. ``pinned``: a training batch's host → device copy from pinned and from pageable memory;
   ``precision_effects``: what TF32 changes in spectral norms, what bf16 changes in the penalty's σ²;
5. ``slice``: a timed slice of ``config/paper.yaml`` through lipbench's own entry points (base and
   penalty training steps, PnP over BSD10 × the paper's kernels per method, one spectral norm to the
   paper's tolerance, BSD68 denoising), the effect of TF32 on σ and PSNR, and the extrapolation of the
   whole configuration from these unit costs.

Results go to ``OUT/gpu-measure.json``, rewritten after every section (a run cut short keeps what it had).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paper_estimate

import lipbench.steps.train
from lipbench.data import PatchSampler, load_images, load_kernel
from lipbench.lipschitz import Reflected, spectral_norm
from lipbench.models import DnCNN
from lipbench.plumbing.device import compile_denoiser, resolve_device
from lipbench.plumbing.io import atomic_write
from lipbench.plumbing.precision import tf32
from lipbench.restoration.physics import Blur
from lipbench.restoration.pnp import pnp_pgd
from lipbench.steps.denoise import DenoiseSettings, denoising_psnr
from lipbench.steps.pnp import PnPSettings, run_pnp
from lipbench.steps.train import TrainConfig, initial_state, train, train_step
from lipbench.workflow.rules import read_effective

REPO = Path(__file__).resolve().parents[1]
MACS_PER_PIXEL = {20: 9 * (64 + 18 * 64 * 64 + 64)}  # DnCNN-20/64, grey: 3×3 convolutions


@dataclasses.dataclass(frozen=True)
class Sizes:
    depth: int
    width: int
    batch: int
    patch: int
    images: int | None  # training images (None: all of bsd400)
    pnp_batch: int
    crop: int | None  # PnP images (None: full BSD10)
    kernels: tuple[str, ...]
    steps: int
    pnp_iters: int
    mean_iters: int
    repeat: int
    compile_modes: tuple[str, ...]


PAPER_KERNELS = (*(f"levin{i}" for i in range(1, 9)), "gaussian_1_6")
FULL = Sizes(20, 64, 100, 40, None, 16, None, PAPER_KERNELS, 200, 50, 4, 10, ("default",))
SMOKE = Sizes(3, 8, 4, 24, 8, 2, 32, ("levin1", "gaussian_1_6"), 4, 3, 2, 2, ("eager",))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeat: int, warmup: int = 1) -> dict[str, float]:
    """Median and quartiles of ``repeat`` calls (after ``warmup``), each ended by a device sync."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "n": repeat}


class Report:
    def __init__(self, out: Path, sizes: Sizes, device: torch.device) -> None:
        self.path, self.start = out / "gpu-measure.json", time.perf_counter()
        self.data: dict[str, Any] = {"sizes": dataclasses.asdict(sizes), "environment": environment(device)}

    def add(self, section: str, value: Any) -> None:
        self.data[section] = value
        self.data["elapsed_s"] = time.perf_counter() - self.start
        with atomic_write(self.path, "w") as fh:
            json.dump(self.data, fh, indent=1, default=float)
        print(f"[{self.data['elapsed_s']:6.1f} s] {section}: {json.dumps(value, default=float)[:400]}", flush=True)


def environment(device: torch.device) -> dict[str, Any]:
    env = {"torch": str(torch.__version__), "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(name=props.name, memory_gib=props.total_memory / 2**30, sms=props.multi_processor_count,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())  # fmt: skip
    else:
        env.update(name=platform.processor() or "cpu", threads=torch.get_num_threads())
    return env


def _model(sizes: Sizes, device: torch.device, clamp: bool = False) -> DnCNN:
    torch.manual_seed(0)  # benchmark weights only
    return DnCNN(depth=sizes.depth, width=sizes.width, clamp=clamp).eval().to(device)


def throughput(sizes: Sizes, device: torch.device, x: torch.Tensor) -> dict[str, Any]:
    model = _model(sizes, device)
    macs = 9 * (2 * sizes.width + (sizes.depth - 2) * sizes.width**2) * x[0].numel()
    out = {"tflop_per_forward": 2 * macs * x.shape[0] / 1e12, "batch": list(x.shape)}
    with torch.no_grad():
        for name, allow, amp in (("float32", False, False), ("tf32", True, False), ("bf16", False, True)):
            with tf32(allow), torch.autocast(device.type, torch.bfloat16, enabled=amp):
                t = timed(lambda: model(x), device, sizes.repeat)
            out[name] = {**t, "tflops": out["tflop_per_forward"] / t["median"]}
    return out


def training_options(sizes: Sizes, device: torch.device, images: list[torch.Tensor]) -> dict[str, Any]:
    out = {}
    variants = {
        "float32": {"tf32": False}, "tf32": {}, "tf32+channels_last": {"channels_last": True},
        "bf16": {"amp": "bf16"}, "bf16+channels_last": {"amp": "bf16", "channels_last": True},
    }  # fmt: skip
    for lam in (0.0, 1e-3):
        for name, extra in variants.items():
            config = TrainConfig(
                model_kwargs={"depth": sizes.depth, "width": sizes.width}, batch_size=sizes.batch,
                patch_size=sizes.patch, lam=lam, power_iters=5, **extra,
            )  # fmt: skip
            state = initial_state(config, device)
            sampler = PatchSampler(images, sizes.patch, sizes.batch, generator=state.generator,
                                   pin_memory=device.type == "cuda")  # fmt: skip
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t = timed(lambda: train_step(state, config, sampler, device), device, sizes.repeat, warmup=3)  # noqa: B023
            peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else math.nan
            out[f"{'penalty' if lam else 'plain'}/{name}"] = {**t, "peak_mib": peak}
    return out


def _pnp_problem(sizes: Sizes, device: torch.device, root: str | None):
    images = [x for x in load_images("bsd10", root) if x.shape[-2] <= x.shape[-1]]  # landscape: one shape
    if sizes.crop:
        images = [x[..., : sizes.crop, : sizes.crop] for x in images]
    jobs = [(x, k) for k in sizes.kernels for x in images][: sizes.pnp_batch]
    A = Blur([load_kernel(k, root) for _, k in jobs])
    x = torch.stack([x for x, _ in jobs])
    y = A(x) + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    return A, y.to(device), x.to(device)


def pnp_options(sizes: Sizes, device: torch.device, root: str | None) -> dict[str, Any]:
    A, y, x = _pnp_problem(sizes, device, root)
    iters = 5
    out: dict[str, Any] = {"batch": list(y.shape), "iterations_per_call": iters}

    def run(denoiser, allow_tf32=False):
        with tf32(allow_tf32):
            pnp_pgd(denoiser, A, y, gamma=1.99, iters=iters, x_true=x)

    plain = _model(sizes, device, clamp=True)
    with torch.no_grad(), tf32(False):
        forward = timed(lambda: plain(y), device, sizes.repeat)
    with torch.no_grad(), tf32(True):
        out["denoiser_forward_tf32"] = timed(lambda: plain(y), device, sizes.repeat)
    out["denoiser_forward"] = forward
    out["float32"] = timed(lambda: run(plain), device, sizes.repeat)
    out["tf32"] = timed(lambda: run(plain, True), device, sizes.repeat)
    plain.to(memory_format=torch.channels_last)
    out["channels_last"] = timed(lambda: run(plain), device, sizes.repeat)
    plain.to(memory_format=torch.contiguous_format)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        out["cudnn_benchmark"] = timed(lambda: run(plain), device, sizes.repeat, warmup=2)
        torch.backends.cudnn.benchmark = False
    for mode in sizes.compile_modes:
        torch._dynamo.reset()
        try:
            compiled = compile_denoiser(plain, mode)
            start = time.perf_counter()
            run(compiled)
            sync(device)
            first = time.perf_counter() - start
            out[f"compile-{mode}"] = {**timed(lambda: run(compiled), device, sizes.repeat), "first_call_s": first}  # noqa: B023
        except Exception as exc:  # a missing compiler toolchain must not lose the other numbers
            traceback.print_exc()
            out[f"compile-{mode}"] = {"error": repr(exc)}
    for key, value in list(out.items()):
        if isinstance(value, dict) and "median" in value and not key.startswith("denoiser_forward"):
            base = out["denoiser_forward_tf32" if key == "tf32" else "denoiser_forward"]  # the same precision
            value["per_iteration_over_forward"] = value["median"] / iters / base["median"]
    return out


def precision_effects(sizes: Sizes, device: torch.device, root: str | None) -> dict[str, Any]:
    """What TF32 and bf16 change in the numbers lipbench reports: ‖∂J‖ and ‖∂Q‖ of a DnCNN-20 (seeded
    Kaiming-normal weights: a Jacobian far from the identity) at two noisy BSD10 images to the paper's
    tolerance, and the training penalty's σ² on a batch of patches under bf16 autocast."""
    from lipbench.lipschitz import fne_penalty
    from lipbench.plumbing.precision import autocast

    paper = read_effective(REPO / "config" / "paper.yaml")
    model = _model(sizes, device)
    for m in model.modules():  # torch's default init leaves a deep DnCNN's residual ≈ 0, so ∂J ≈ Id
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, a=0.01, nonlinearity="leaky_relu")
    images = load_images("bsd10", root)[:2]
    if sizes.crop:
        images = [x[..., : sizes.crop, : sizes.crop] for x in images]
    x = torch.stack(images)
    x = (x + 0.009 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).to(device)
    out: dict[str, Any] = {}
    for name, f in (("J", model), ("Q", Reflected(model))):
        sigmas = {}
        for allow in (False, True):
            g = torch.Generator().manual_seed(1)
            with tf32(allow):
                seconds, sn = _seconds(
                    lambda: spectral_norm(f, x, max_iter=paper["lipschitz"]["max_iter"], tol=paper["lipschitz"]["tol"],  # noqa: B023
                                          generator=g),  # noqa: B023
                    device,
                )  # fmt: skip
            sigmas[allow] = sn.sigma.double().cpu()
            if not allow:
                out[f"{name}_sigma"] = sigmas[allow].tolist()
                out[f"{name}_iterations"] = sn.steps.tolist()
                out[f"{name}_iteration_s"] = seconds / sn.iterations
        out[f"{name}_tf32_rel_diff"] = (sigmas[True] / sigmas[False] - 1).abs().max().item()
        g = torch.Generator().manual_seed(1)  # the evaluation's default solver, same start vectors
        seconds, sn = _seconds(
            lambda: spectral_norm(f, x, max_iter=paper["lipschitz"]["max_iter"], tol=paper["lipschitz"]["tol"],  # noqa: B023
                                  generator=g, solver="lanczos"),  # noqa: B023
            device,
        )  # fmt: skip
        out[f"{name}_lanczos_sigma"] = sn.sigma.double().cpu().tolist()
        out[f"{name}_lanczos_iterations"] = sn.steps.tolist()
        out[f"{name}_lanczos_iteration_s"] = seconds / sn.iterations
        out[f"{name}_lanczos_rel_diff"] = (sn.sigma.double().cpu() / sigmas[False] - 1).abs().max().item()
    patches = PatchSampler(load_images("bsd400", root)[:50], sizes.patch, sizes.batch,
                           generator=torch.Generator().manual_seed(2)).sample().to(device)  # fmt: skip
    y = patches + 0.009 * torch.randn(patches.shape, generator=torch.Generator().manual_seed(3)).to(device)
    sigma2 = {}
    for amp in ("none", "bf16"):
        with tf32(False), autocast(amp, device):
            p = fne_penalty(model.train(), patches, y, eps=0.05, n_iter=50, tol=0,
                            generator=torch.Generator().manual_seed(4))  # fmt: skip
        sigma2[amp] = p.sigma2.double().cpu()
    model.eval()
    out["penalty_sigma2_float32_max"] = sigma2["none"].max().item()
    out["penalty_sigma2_bf16_rel_diff_max"] = (sigma2["bf16"] / sigma2["none"] - 1).abs().max().item()
    return out


def pinned(sizes: Sizes, device: torch.device, images: list[torch.Tensor]) -> dict[str, Any]:
    out = {}
    for pin in (False, True):
        sampler = PatchSampler(images, sizes.patch, sizes.batch, generator=torch.Generator().manual_seed(0),
                               pin_memory=pin)  # fmt: skip
        batch = sampler.sample()
        out[f"copy_{'pinned' if pin else 'pageable'}"] = timed(lambda: batch.to(device, non_blocking=True), device,  # noqa: B023
                                                               sizes.repeat * 5)  # fmt: skip
        out[f"sample_{'pinned' if pin else 'pageable'}"] = timed(sampler.sample, device, sizes.repeat)
    return out


def _seconds(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def paper_slice(sizes: Sizes, device: torch.device, root: str | None, work: Path, report: Report) -> dict[str, Any]:
    """Lipbench's own entry points on the paper's shapes; unit costs for the extrapolation."""
    paper = read_effective(REPO / "config" / "paper.yaml")
    t = paper["train"]
    base = TrainConfig(
        model_kwargs={"depth": sizes.depth, "width": sizes.width, "activation": "leaky_relu"}, dataset="bsd400",
        max_images=sizes.images, patch_size=sizes.patch, batch_size=sizes.batch, steps=sizes.steps, lr=t["lr"],
        sigma=t["sigma"], eps=t["eps"], power_iters=t["power_iters"], checkpoint_every=sizes.steps,
    )  # fmt: skip
    out: dict[str, Any] = {}
    load_s, images = _seconds(lambda: load_images("bsd400", root), device)
    out["load_bsd400_s"] = load_s
    # time the steps, not the JPEG decoding (timed above): train() gets the images already loaded
    with mock.patch.object(lipbench.steps.train, "load_images", lambda *a, **k: images):
        seconds, base_path = _seconds(
            lambda: train(base, work / "base", device=str(device), root=root, progress=False), device
        )
        out["base_step_s"] = seconds / sizes.steps
        penalty = dataclasses.replace(base, lam=1e-3, lr=t["finetune_lr"], init=str(base_path))
        seconds, model_path = _seconds(
            lambda: train(penalty, work / "lam", device=str(device), root=root, progress=False), device
        )
        out["penalty_step_s"] = seconds / sizes.steps
    report.add("slice", out)

    pnp = paper["pnp"]
    common = {"checkpoint": str(model_path), "kernels": sizes.kernels, "sigma": pnp["sigma"],
              "kernel_sigma": {k: v for k, v in pnp["kernel_sigma"].items() if k in sizes.kernels},
              "gamma": pnp["gamma"], "crop": sizes.crop}  # fmt: skip
    runs = {}
    for method, iters, extra in (
        ("standard", sizes.pnp_iters, {}),
        ("standard-tf32", sizes.pnp_iters, {"tf32": True}),
        ("random", max(2, sizes.pnp_iters // 2), {"equivariance": "random"}),
        ("mean", sizes.mean_iters, {"equivariance": "mean"}),
    ):
        seconds, result = _seconds(lambda: run_pnp(PnPSettings(**common, iters=iters, **extra), root=root,  # noqa: B023
                                                   device=str(device)), device)  # fmt: skip
        runs[method] = result
        out[f"pnp_{method}_iteration_s"] = seconds / iters
        out[f"pnp_{method}_psnr"] = float(result["final"].psnr.mean())
        report.add("slice", out)
    diff = (runs["standard"]["final"].psnr - runs["standard-tf32"]["final"].psnr).abs()
    out["tf32_psnr_abs_diff_max_db"] = float(diff.max())

    model = _model(sizes, device)
    model.load_state_dict(torch.load(model_path, map_location=device, weights_only=True)["model"])
    x = load_images("bsd10", root)[0][None].to(device)
    if sizes.crop:
        x = x[..., : sizes.crop, : sizes.crop]
    x = x + t["sigma"] * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).to(device)
    lip = paper["lipschitz"]
    norms = {}
    for allow in (False, True):
        g = torch.Generator().manual_seed(1)
        with tf32(allow):
            seconds, sn = _seconds(
                lambda: spectral_norm(
                    Reflected(model),
                    x,
                    max_iter=lip["max_iter"],
                    tol=lip["tol"],
                    generator=g,  # noqa: B023
                    solver=lip.get("solver", "lanczos"),
                ),
                device,
            )
        norms[allow] = sn
        if not allow:
            out["lipschitz_iteration_s"] = seconds / sn.iterations
            out["lipschitz_iterations_to_tol"] = sn.iterations
    out["sigma2_Q"] = norms[False].sigma.square().item()
    out["tf32_sigma_rel_diff"] = abs(norms[True].sigma.item() / norms[False].sigma.item() - 1)
    settings = DenoiseSettings(str(model_path), "bsd68", crop=sizes.crop)
    seconds, _ = _seconds(lambda: denoising_psnr(settings, root=root, device=str(device)), device)
    out["denoise_bsd68_s"] = seconds
    out["extrapolation"] = extrapolate(paper, out, report.data.get("precision_effects"))
    return out


def extrapolate(paper: dict[str, Any], unit: dict[str, float], effects: dict[str, Any] | None) -> dict[str, Any]:
    """The whole paper configuration from the slice's unit costs (paper_estimate.from_slice; the page
    adds the FLOP-count estimate). Power-iteration counts and step costs come from ``precision_effects``
    (a DnCNN whose Jacobian is far from the identity) when it ran, else from the slice's barely trained
    model."""
    solver = paper["lipschitz"].get("solver", "lanczos")
    if effects and f"J_{solver}_iterations" in effects:
        iterations, per_image = paper_estimate.lipschitz_unit(effects, solver)
    else:
        iterations, per_image = unit["lipschitz_iterations_to_tol"], unit["lipschitz_iteration_s"]
    speedup = unit["pnp_standard_iteration_s"] / unit["pnp_standard-tf32_iteration_s"]
    work = paper_estimate.jobs(paper, {**unit, "lipschitz_image_iteration_s": per_image,
                                       "pnp_tf32_speedup": speedup}, iterations)  # fmt: skip
    stages = paper_estimate.from_slice(paper, {**unit, "lipschitz_image_iteration_s": per_image,
                                               "pnp_tf32_speedup": speedup}, iterations)  # fmt: skip
    per_lambda = len(paper["train"]["lambdas"]) + len(paper.get("denoisers", {}))
    return {"lipschitz_iterations": iterations, "stages_s": stages, "total_s": sum(stages.values()),
            "dominant": max(stages, key=stages.get), "pnp_tf32_speedup": speedup,
            "plan_s": {g: paper_estimate.plan(work, g).makespan_s for g in (1, 2, 4, per_lambda)}}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="toy sizes: every code path in seconds, any device")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--root", help="data root (default: $LIPBENCH_DATA)")
    parser.add_argument("--skip", nargs="*", default=[], help="sections to skip")
    parser.add_argument("--only", nargs="*", help="run only these sections")
    parser.add_argument("--budget-s", type=float, default=math.inf, help="start no section after this many seconds")
    args = parser.parse_args(argv)
    sizes, device = (SMOKE if args.smoke else FULL), resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, sizes, device)
    images = load_images("bsd400", args.root)[: sizes.images or 400]
    sections = {
        "throughput": lambda: throughput(sizes, device, _pnp_problem(sizes, device, args.root)[1]),
        "training_options": lambda: training_options(sizes, device, images),
        "pnp_options": lambda: pnp_options(sizes, device, args.root),
        "pinned": lambda: pinned(sizes, device, images),
        "precision_effects": lambda: precision_effects(sizes, device, args.root),
    }  # in this order: the slice's extrapolation uses precision_effects
    with tempfile.TemporaryDirectory() as work:
        sections["slice"] = lambda: paper_slice(sizes, device, args.root, Path(work), report)
        for name, fn in sections.items():
            skipped = name in args.skip or (args.only is not None and name not in args.only)
            if skipped or time.perf_counter() - report.start > args.budget_s:
                continue
            try:
                report.add(name, fn())
            except Exception as exc:  # record it and go on: the other sections' numbers still count
                traceback.print_exc()
                report.add(name, {**report.data.get(name, {}), "error": repr(exc)})
    print(f"wrote {report.path} after {time.perf_counter() - report.start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
