"""``lipbench pretrained``: a denoiser trained elsewhere, as a lipbench checkpoint (no training).

The model is registered or ``module:factory`` (with its keyword arguments); its weights, a state dict,
are loaded only once their SHA-256 matches the one given, must fit the model exactly and be finite,
and the denoiser must return an image of its input's shape (:mod:`lipbench.models.pretrained`). The
checkpoint records the weights' path and digest, and ``train_sigma``, the noise level it denoises (the
Lipschitz evaluation's noisy points and the denoising PSNR use it, as a trained model's).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import lipbench
from lipbench.models import save_checkpoint
from lipbench.models.pretrained import pretrained_payload
from lipbench.plumbing.command import Command
from lipbench.plumbing.options import check, default_of, from_args, option
from lipbench.steps.train import TrainConfig


@dataclass(frozen=True)
class PretrainedSettings:
    """A pretrained denoiser; each field's default, help and bounds are those of ``lipbench
    pretrained``'s option of the same name."""

    model: str = option(help="registered architecture or your own as module:factory (e.g. deepinv.models:DnCNN)")
    model_kwargs: dict[str, Any] = option(
        factory=dict, help="the factory's keyword arguments: KEY=VALUE pairs or a JSON object"
    )
    weights: str | None = option(None, help="a state dict (.pt/.pth)", none="the weights the factory sets")
    sha256: str | None = option(None, help="the weights' SHA-256 (required with --weights)", none="none")
    label: str = option("pretrained", help="the denoiser's name in the tables")
    train_sigma: float = option(default_of(TrainConfig, "sigma"), above=0, help="the noise level it denoises")
    channels: int = option(1, minimum=1, help="image channels")

    def __post_init__(self) -> None:
        check(self, "pretrained denoiser")


def pretrained_checkpoint(settings: PretrainedSettings) -> dict[str, Any]:
    """The checkpoint payload (see the module docstring)."""
    payload = pretrained_payload(
        settings.model, settings.model_kwargs, settings.weights, settings.sha256, settings.label, settings.channels
    )
    payload["train_config"] = {"sigma": settings.train_sigma, "lam": math.nan}
    payload["lipbench_version"] = lipbench.__version__
    return payload


def run(args: argparse.Namespace) -> int:
    payload = pretrained_checkpoint(from_args(PretrainedSettings, args))
    save_checkpoint(payload, args.out)
    print(f"wrote {args.out} ({payload['label']}: {payload['model_config']['name']})")
    return 0


COMMAND = Command(run, settings=(PretrainedSettings,), out="the checkpoint to write (model.pt)")
