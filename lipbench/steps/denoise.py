"""``lipbench denoise``, the denoising quality of a trained denoiser: PSNR of ``J(x + σ n)`` per test
image (BSD68 at the training noise level by default), beside the noisy input's; and what both evaluations of a
checkpoint start from (:func:`evaluation_inputs`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from lipbench.data import DATASETS, centre_crop, image_ids, load_images
from lipbench.models import denoiser_label, load_model, read_checkpoint
from lipbench.plumbing.command import Command
from lipbench.plumbing.device import resolve_device
from lipbench.plumbing.io import write_table
from lipbench.plumbing.options import check, default_of, from_args, option
from lipbench.plumbing.precision import tf32
from lipbench.plumbing.seeding import generator
from lipbench.restoration.metrics import psnr
from lipbench.steps.train import TrainConfig


@dataclass(frozen=True)
class DenoiseSettings:
    """One denoising evaluation (``lipbench denoise``'s options)."""

    checkpoint: str = option(help="a model.pt written by `lipbench train` or `tune-tv`")
    dataset: str = option("bsd68", help="test images", choices=tuple(DATASETS))
    crop: int | None = option(None, minimum=1, help="centre crop size (quick CPU runs)", none="full images")
    sigma: float | None = option(None, above=0, help="noise std", none="the training noise level")
    tf32: bool = option(False, help="CUDA: TF32 convolutions in the denoised images")

    def __post_init__(self) -> None:
        check(self, "denoising settings")


def training_sigma(payload: dict) -> float:
    """The noise level a checkpoint was trained at (the training default for one without it)."""
    return float(payload.get("train_config", {}).get("sigma", default_of(TrainConfig, "sigma")))


def evaluation_inputs(
    settings: Any, root: str | None, dev: torch.device
) -> tuple[dict, torch.nn.Module, float, list[str], list[torch.Tensor]]:
    """What both evaluations start from (``settings``: a :class:`DenoiseSettings` or a
    ``LipschitzSettings``, their checkpoint, sigma, dataset and crop): the checkpoint's payload and
    model, the noise level (the training one unless given), and the test images (centre-cropped if
    asked) with their ids."""
    payload = read_checkpoint(settings.checkpoint, map_location=dev)
    sigma = settings.sigma if settings.sigma is not None else training_sigma(payload)
    model = load_model(settings.checkpoint, map_location=dev, payload=payload)
    images = load_images(settings.dataset, root)
    if settings.crop is not None:
        images = [centre_crop(x, settings.crop) for x in images]
    return payload, model, sigma, image_ids(settings.dataset, root), images


def lam_of(payload: dict) -> float:
    return payload.get("train_config", {}).get("lam", float("nan"))


def denoising_psnr(settings: DenoiseSettings, *, root: str | None = None, device: str = "auto") -> pd.DataFrame:
    """PSNR of ``J(x + σ n)`` per image (σ: the training noise level unless given; the noise of
    image ``i`` is seeded by ``(i, σ)``), with the noisy input's PSNR for reference. ``tf32``: let
    CUDA run the denoiser's convolutions in TF32 (off: the PSNR is a reported number)."""
    dev = resolve_device(device)
    payload, model, sigma, ids, images = evaluation_inputs(settings, root, dev)
    rows = []
    with torch.no_grad(), tf32(settings.tf32):
        for i, x in zip(ids, images, strict=True):
            y = x + sigma * torch.randn(x.shape, generator=generator("denoise-noise", i, sigma))
            out = model(y[None].to(dev)).cpu()[0]
            rows.append({"image": i, "sigma": sigma, "psnr_noisy": psnr(y, x).item(), "psnr": psnr(out, x).item()})
    table = pd.DataFrame(rows)
    table.insert(0, "denoiser", denoiser_label(payload))
    table.insert(1, "lam", lam_of(payload))
    table.insert(2, "dataset", settings.dataset)
    return table


def run(args: argparse.Namespace) -> int:
    settings = from_args(DenoiseSettings, args)
    table = denoising_psnr(settings, root=args.root, device=args.device)
    path = write_table(table, args.out)
    print(
        f"{settings.dataset}: PSNR {table.psnr.mean():.2f} dB (noisy input {table.psnr_noisy.mean():.2f} dB); "
        f"wrote {path}"
    )
    return 0


COMMAND = Command(run, settings=(DenoiseSettings,), out="output table (.csv or .parquet)", device=True, root=True)
