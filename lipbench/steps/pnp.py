"""``lipbench pnp``, a PnP deblurring experiment: every image × kernel of a dataset, batched by image shape.

The observation of image ``i`` with kernel ``k`` has noise seeded by ``(i, k, σ)``, so every
method sees the same ``y``. In random equivariant mode each batch restarts the same seeded
generator: image ``i`` meets the same ``g_1, g_2, …`` whatever the batching.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

import lipbench
from lipbench.data import DATASETS, centre_crop, image_ids, load_images, load_kernel
from lipbench.models import denoiser_label, load_model, read_checkpoint
from lipbench.plumbing.command import Command
from lipbench.plumbing.device import COMPILE_MODES, compile_denoiser, resolve_device
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import atomic_write, remove_outputs, save_png, staged_folder, write_json, write_table
from lipbench.plumbing.options import default_of, from_args, option, problems
from lipbench.plumbing.precision import tf32, to_channels_last
from lipbench.plumbing.seeding import derive_seed
from lipbench.restoration.groups import build_group, equivariant
from lipbench.restoration.metrics import BORDER, SSIM_MIN_SIDE, psnr, ssim
from lipbench.restoration.physics import Blur, check_fits, observe
from lipbench.restoration.pnp import CLAMPS, GAMMA_UNITS, pnp_pgd
from lipbench.restoration.trajectory import clamped

SAVE_IMAGES = 2  # PNGs of the first images (`pnp` and `degrade`)
# the workflow's PnP methods (config pnp.methods, folder names) and the --equivariance each runs
METHODS = {"standard": "none", "random": "random", "mean": "mean"}
EQUIVARIANCE = tuple(METHODS.values())


@dataclass(frozen=True)
class PnPSettings:
    """One PnP experiment (recorded with its outputs); each field's default, help and bounds are
    those of ``lipbench pnp``'s option of the same name."""

    checkpoint: str = option(help="a model.pt written by `lipbench train` or `tune-tv`")
    dataset: str = option("bsd10", help="test images", choices=tuple(DATASETS))
    kernels: tuple[str, ...] = option(("levin1",), metavar="KERNEL", help="blur kernels (names or .mat/.npy files)")
    sigma: float = option(0.01, minimum=0, help="measurement noise std (images in [0, 1])")
    kernel_sigma: dict[str, float] = option(
        factory=dict,
        metavar="KERNEL=SIGMA",
        help="noise of one kernel instead of --sigma (the papers: gaussian_1_6=0.008)",
    )
    gamma: float = option(1.99, above=0, help="step size, unit: --gamma-unit (paper 1: 1.99 absolute; "
                          "paper 2: 1 lipschitz); PnP-PGD needs γ‖AᵀA‖ < 2")  # fmt: skip
    gamma_unit: str = option(
        "absolute",
        choices=GAMMA_UNITS,
        help="absolute: γ = GAMMA; lipschitz: γ = GAMMA / ‖AᵀA‖, per kernel on the image grid",
    )
    allow_large_step: bool = option(False, help="run with γ‖AᵀA‖ >= 2, beyond PnP-PGD's convergence range")
    x0: str = option("y", choices=("y", "adjoint"), help="first iterate: y or Aᵀy")
    iters: int = option(300, minimum=1, help="PnP-PGD iterations")
    equivariance: str = option(
        "none", choices=EQUIVARIANCE, help="none; random: a random group element per iteration; mean: the group mean"
    )
    group: str = option("d4", help="d4, rotations, flips, shifts, or TURNS+shifts")
    shift_range: tuple[int, int] = option((-64, 63), metavar=("LOW", "HIGH"), help="range of the group's shifts")
    seed: int = option(0, minimum=0, help="seed of the random group draws and Lipschitz estimates")
    crop: int | None = option(None, minimum=13, help="centre crop size (quick CPU runs)", none="full images")
    max_images: int | None = option(None, minimum=1, help="the dataset's first N images only", none="all")
    clamp: str = option(
        "both", choices=CLAMPS, help="clip J's input and output (paper 1), the iterate only (paper 2), or nothing"
    )
    record_every: int = option(1, minimum=1, help="record every N-th iteration (and the last)")
    lipschitz_every: int = option(0, minimum=0, help="‖∂J‖ at J's input every N iterations (0: off)")
    max_batch: int = option(16, minimum=1, help="images × kernels per batch")
    # execution options; defaults chosen by measurement (docs/performance.md), tf32 acts on CUDA only
    tf32: bool = option(False, help="CUDA: let float32 convolutions use TF32 in the restorations")
    compile: str = option("none", choices=COMPILE_MODES, help="torch.compile the denoiser")
    channels_last: bool = option(False, help="NHWC weights and activations")

    def __post_init__(self) -> None:
        found = problems(self)
        if not self.kernels:
            found.append("give at least one kernel")
        if any(not (0 <= v < math.inf) for v in self.kernel_sigma.values()):
            found.append(f"--kernel-sigma values must be finite and >= 0, got {self.kernel_sigma}")
        unused = sorted(set(self.kernel_sigma) - set(self.kernels))
        if unused:
            found.append(f"--kernel-sigma names kernels that are not run: {unused}")
        if found:
            raise LipbenchError("invalid PnP settings: " + "; ".join(found))

    @property
    def method(self) -> str:
        return "pnp" if self.equivariance == "none" else f"equivariant-{self.equivariance}"

    def noise(self, kernel: str) -> float:
        return self.kernel_sigma.get(kernel, self.sigma)


def _batches(shapes: list[tuple[int, ...]], jobs: list[tuple[int, str]], size: int) -> list[list[tuple[int, str]]]:
    by_shape: dict[tuple[int, ...], list[tuple[int, str]]] = defaultdict(list)
    for job in jobs:
        by_shape[shapes[job[0]]].append(job)
    return [group[i : i + size] for group in by_shape.values() for i in range(0, len(group), size)]


def run_pnp(
    settings: PnPSettings, *, root: str | None = None, device: str = "auto", model: nn.Module | None = None
) -> dict[str, Any]:
    """Run the experiment; return ``records``, ``final`` (tables) and ``iterates`` (tensors).

    The denoiser is ``settings.checkpoint``'s, or ``model`` when given (named by its registry
    entry, λ NaN: e.g. a TV prox whose weight is being tuned)."""
    dev = resolve_device(device)
    with tf32(settings.tf32):
        if model is None:
            payload = read_checkpoint(settings.checkpoint, map_location=dev)
            model = load_model(settings.checkpoint, map_location=dev, payload=payload)
            name, lam = denoiser_label(payload), payload.get("train_config", {}).get("lam", float("nan"))
        else:
            name, lam = type(model).__name__, float("nan")
        return _run_pnp(settings, root, dev, model.to(dev).eval(), {"denoiser": name, "lam": lam})


def _run_pnp(
    settings: PnPSettings, root: str | None, dev: torch.device, model: nn.Module, coordinates: dict[str, Any]
) -> dict[str, Any]:
    clamped(model, settings.clamp)  # both: J's input and output clipped to [0, 1], as in PnP-MMO's test code
    model = to_channels_last(model, settings.channels_last)
    compiled = compile_denoiser(model, settings.compile)  # Lipschitz records use the plain model
    ids = image_ids(settings.dataset, root)[: settings.max_images]
    images = load_images(settings.dataset, root)[: settings.max_images]
    if settings.crop is not None:
        if not 13 <= settings.crop <= min(min(x.shape[-2:]) for x in images):
            raise LipbenchError(f"--crop {settings.crop} must lie between 13 and the smallest image side")
        images = [centre_crop(x, settings.crop) for x in images]
    kernels = {name: load_kernel(name, root) for name in settings.kernels}
    for name, kernel in kernels.items():
        for shape in {tuple(x.shape) for x in images}:
            check_fits(name, kernel, shape)
    group = build_group(settings.group, settings.shift_range) if settings.equivariance != "none" else None
    jobs = [(i, k) for i in range(len(images)) for k in settings.kernels]
    job_index = {job: n for n, job in enumerate(jobs)}
    records, finals, iterates = [], [], {}
    for batch in _batches([tuple(x.shape) for x in images], jobs, settings.max_batch):
        x_true = torch.stack([images[i] for i, _ in batch]).to(dev)
        A = Blur([kernels[k] for _, k in batch], name=[k for _, k in batch])
        y = torch.stack(
            [observe(images[i], Blur(kernels[k], name=k), settings.noise(k), ids[i], k) for i, k in batch]
        ).to(dev)
        denoiser = compiled
        if group is not None:
            g = (
                torch.Generator().manual_seed(derive_seed("equivariant", settings.seed))
                if settings.equivariance == "random"
                else None
            )
            denoiser = equivariant(compiled, group, settings.equivariance, g)
        result = pnp_pgd(
            denoiser, A, y, gamma=settings.gamma, gamma_unit=settings.gamma_unit, iters=settings.iters,
            x0=settings.x0, x_true=x_true,
            clamp=settings.clamp != "none", record_every=settings.record_every,
            lipschitz_every=settings.lipschitz_every,
            lipschitz_of=equivariant(model, group, "mean") if settings.equivariance == "mean" else model,
            generator=torch.Generator().manual_seed(settings.seed), allow_large_step=settings.allow_large_step,
        )  # fmt: skip
        table = result.records
        table.insert(0, "job", [job_index[batch[b]] for b in table["sample"]])
        table.insert(0, "image", [ids[batch[b][0]] for b in table["sample"]])
        table.insert(1, "kernel", [batch[b][1] for b in table["sample"]])
        records.append(table.drop(columns="sample"))
        final_psnr = psnr(result.x, x_true).cpu()
        small = min(x_true.shape[-2:]) - 2 * BORDER < SSIM_MIN_SIDE  # too small for SSIM's window: NaN
        final_ssim = torch.full((len(batch),), float("nan")) if small else ssim(result.x, x_true)
        y_psnr = psnr(y, x_true).cpu()
        for b, (i, k) in enumerate(batch):
            iterates[f"{ids[i]}/{k}"] = result.x[b].cpu()
            finals.append(
                {
                    "job": job_index[i, k], "image": ids[i], "kernel": k, "sigma": settings.noise(k),
                    "gamma": result.gamma[b].item(),
                    "psnr_input": y_psnr[b].item(), "psnr": final_psnr[b].item(), "ssim": final_ssim[b].item(),
                }
            )  # fmt: skip
    provenance = {**coordinates, "method": settings.method, "dataset": settings.dataset, "seed": settings.seed}
    # dataset order, then the settings' kernel order, whatever the batching
    records_table = pd.concat(records, ignore_index=True).sort_values(["job", "iteration"], kind="stable")
    final = pd.DataFrame(finals).sort_values("job", kind="stable")
    best = records_table.loc[
        records_table.groupby(["image", "kernel"]).psnr.idxmax(), ["image", "kernel", "psnr", "iteration"]
    ]
    final = final.merge(
        best.rename(columns={"psnr": "psnr_best", "iteration": "iteration_best"}), on=["image", "kernel"]
    )
    records_table, final = records_table.drop(columns="job"), final.drop(columns="job")
    for table in (records_table, final):
        for column, value in reversed(provenance.items()):
            table.insert(0, column, value)
    return {
        "records": records_table.reset_index(drop=True),
        "final": final.reset_index(drop=True),
        "iterates": iterates,
    }


PNP_OUTPUTS = ("records.csv", "records.parquet", "final.csv", "final.pt", "settings.json", "images/*.png")


def write_pnp_outputs(
    result: dict[str, Any], settings: PnPSettings, out: Path, *, fmt: str = "csv", save_images: int = SAVE_IMAGES
) -> None:
    """``records.<fmt>``, ``final.csv``, ``final.pt`` (final iterates), ``settings.json``, PNGs
    (:data:`PNP_OUTPUTS`; a previous run's are removed first)."""
    remove_outputs(out, PNP_OUTPUTS)
    write_table(result["records"], out / f"records.{fmt}")
    write_table(result["final"], out / "final.csv")
    with atomic_write(out / "final.pt") as fh:
        torch.save(result["iterates"], fh)
    first = list(dict.fromkeys(key.split("/")[0] for key in result["iterates"]))[:save_images]
    for key, x in result["iterates"].items():
        if key.split("/")[0] in first:
            save_png(x, out / "images" / f"{key.replace('/', '_')}.png")
    write_json({**dataclasses.asdict(settings), "lipbench_version": lipbench.__version__}, out / "settings.json")


# The two papers' deblurring protocols, as presets of the options they set (`--protocol NAME`, and
# `protocol:` in a workflow config): paper 1 (PnP-MMO's test_pnp.py) is the settings' defaults;
# paper 2 (Equivariant PnP) steps by 1/‖AᵀA‖ from Aᵀy, rotations, and clips only the iterate.
PROTOCOL_KEYS = ("gamma", "gamma_unit", "x0", "group", "clamp")
PROTOCOLS = {
    "paper1": {key: default_of(PnPSettings, key) for key in PROTOCOL_KEYS},
    "paper2": {"gamma": 1.0, "gamma_unit": "lipschitz", "x0": "adjoint", "group": "rotations", "clamp": "output"},
}


def save_images_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--save-images",
        type=int,
        default=SAVE_IMAGES,
        metavar="N",
        help="PNGs of the first N images (default: %(default)s)",
    )


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format", default="csv", choices=["csv", "parquet"], help="format of the records table (default: %(default)s)"
    )
    save_images_argument(p)


def run(args: argparse.Namespace) -> int:
    settings = from_args(PnPSettings, args)
    remove_outputs(args.out, PNP_OUTPUTS)  # a failed run leaves no earlier run's outputs behind
    result = run_pnp(settings, root=args.root, device=args.device)
    out = Path(args.out)
    with staged_folder(out) as staging:  # all or nothing
        write_pnp_outputs(result, settings, staging, fmt=args.format, save_images=args.save_images)
    summary = result["final"].groupby("kernel", sort=False)[["psnr_input", "psnr", "psnr_best"]].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"wrote {out / ('records.' + args.format)} ({len(result['records'])} rows) and {out / 'final.csv'}")
    return 0


COMMAND = Command(
    run,
    settings=(PnPSettings,),
    out="folder: records, final.csv, final.pt, images/, settings.json",
    device=True,
    root=True,
    arguments=_arguments,
    presets=PROTOCOLS,
)
