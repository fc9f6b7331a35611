"""A denoiser scaled by β ≤ 1 (βJ, so ∂Q = 2β∂J − Id), as a checkpoint every `lipbench` command loads.

    python benchmarks/results/cpu-scale/shrunk_denoiser.py CHECKPOINT BETA OUT   (writes OUT, a model.pt)
    PYTHONPATH=benchmarks/results/cpu-scale lipbench pnp --checkpoint OUT ...

The model is ``shrunk_denoiser:build`` (this module), so the commands need this folder on PYTHONPATH.
"""

import sys

import torch
from torch import nn

from lipbench.models.checkpoint import read_checkpoint, save_checkpoint
from lipbench.models.clamping import EvalClamped
from lipbench.models.registry import build as build_registered


class Shrunk(EvalClamped):
    """βJ, clamped as PnP clamps J (the inner model's own clamps stay off)."""

    def __init__(self, inner: EvalClamped, beta: float) -> None:
        super().__init__()
        self.inner, self.beta = inner, beta

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        return self.beta * self.inner.denoise(x)


def build(inner: dict, beta: float) -> nn.Module:
    inner = dict(inner)
    return Shrunk(build_registered(inner.pop("name"), **inner), beta)


def main(path: str, beta: str, out: str) -> None:
    payload = read_checkpoint(path)
    inner = dict(payload["model_config"])
    payload["model_config"] = {"name": "shrunk_denoiser:build", "inner": inner, "beta": float(beta)}
    payload["model"] = {f"inner.{k}": v for k, v in payload["model"].items()}
    save_checkpoint(payload, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
