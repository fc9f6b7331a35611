"""``lipbench degrade``: degrade a dataset with blur kernels and noise, the observations and their
quality (the "blurred input" baseline of every PSNR table)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lipbench.data import centre_crop, image_ids, load_images, load_kernel
from lipbench.plumbing.command import Command
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import save_png, staged_folder, write_table
from lipbench.plumbing.options import add_options
from lipbench.restoration.metrics import psnr, ssim
from lipbench.restoration.physics import Blur, check_fits, observation_seed, observe


def degrade_dataset(
    dataset: str,
    kernels: list[str],
    sigma: float,
    out: Path,
    *,
    root: str | None = None,
    crop: int | None = None,
    save_images: int = 0,
) -> pd.DataFrame:
    """Blur every image of ``dataset`` with every kernel, add noise, write ``observations.csv``."""
    if not 0 <= sigma < float("inf"):
        raise LipbenchError(f"--sigma must be a finite number >= 0, got {sigma}")
    images = load_images(dataset, root)
    ids = image_ids(dataset, root)
    if crop is not None:
        if crop < 13 or crop > min(min(x.shape[-2:]) for x in images):
            raise LipbenchError(f"--crop {crop} must lie between 13 and the smallest image side")
        images = [centre_crop(x, crop) for x in images]
    blurs = {name: Blur(load_kernel(name, root), name=name) for name in kernels}
    for name, blur in blurs.items():
        for shape in {tuple(x.shape) for x in images}:
            check_fits(name, blur.kernel, shape)
    rows = []
    for index, (image_id, x) in enumerate(zip(ids, images, strict=True)):
        for name, blur in blurs.items():
            y = observe(x, blur, sigma, image_id, name)
            rows.append(
                {
                    "dataset": dataset, "image": image_id, "kernel": name, "sigma": sigma,
                    "seed": observation_seed(image_id, name, sigma), "height": x.shape[-2], "width": x.shape[-1],
                    "psnr": psnr(y, x).item(), "ssim": ssim(y, x).item(),
                }
            )  # fmt: skip
            if index < save_images:
                save_png(y, out / "images" / f"{image_id}_{name}.png")
    table = pd.DataFrame(rows)
    write_table(table, out / "observations.csv")
    return table


def _arguments(p: argparse.ArgumentParser) -> None:
    from lipbench.steps.pnp import PnPSettings, save_images_argument

    add_options(p, PnPSettings, only=("dataset", "kernels", "sigma", "crop"))
    save_images_argument(p)


def run(args: argparse.Namespace) -> int:
    with staged_folder(args.out) as staging:  # all or nothing
        table = degrade_dataset(
            args.dataset, args.kernels, args.sigma, staging, root=args.root,
            crop=args.crop, save_images=args.save_images,
        )  # fmt: skip
    summary = table.groupby("kernel", sort=False)[["psnr", "ssim"]].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {len(table)} rows to {Path(args.out) / 'observations.csv'}")
    return 0


COMMAND = Command(run, arguments=_arguments, out="output folder", root=True)
