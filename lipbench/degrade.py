"""Degrade a dataset with blur kernels and noise: the observations and their quality (the
"blurred input" baseline of every PSNR table)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from lipbench.data import image_ids, load_images, load_kernel
from lipbench.errors import LipbenchError
from lipbench.io import atomic_path, atomic_write
from lipbench.metrics import psnr, ssim
from lipbench.observe import centre_crop, observation_seed, observe
from lipbench.physics import Blur


def save_png(x: torch.Tensor, path: str | os.PathLike[str]) -> None:
    """Write a ``1×H×W`` or ``3×H×W`` image in [0, 1] as an 8-bit PNG, atomically."""
    array = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    image = Image.fromarray(array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


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
    if not sigma >= 0:
        raise LipbenchError(f"--sigma must be >= 0, got {sigma}")
    images = load_images(dataset, root)
    ids = image_ids(dataset, root)
    if crop is not None:
        if crop < 13 or crop > min(min(x.shape[-2:]) for x in images):
            raise LipbenchError(f"--crop {crop} must lie between 13 and the smallest image side")
        images = [centre_crop(x, crop) for x in images]
    blurs = {name: Blur(load_kernel(name, root), name=name) for name in kernels}
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
    with atomic_write(out / "observations.csv", "w") as fh:
        table.to_csv(fh, index=False)
    return table
