"""BM3D (Dabov et al. 2007, the `bm3d` package) as a checkpoint every `lipbench` command loads: an
independent reference for what a denoiser gains over its noisy input at the cpu scale's σ = 0.009.

    pip install bm3d                                  (not a lipbench dependency)
    python benchmarks/results/cpu-scale/bm3d_denoiser.py SIGMA OUT      (writes OUT, a model.pt)
    PYTHONPATH=benchmarks/results/cpu-scale lipbench denoise --checkpoint OUT --out bm3d.csv

The model is ``bm3d_denoiser:build`` (this module), so the commands need this folder on PYTHONPATH.
``lipbench denoise`` then draws the same noise per image as for the trained denoisers.
"""

import sys

import bm3d
import numpy as np
import torch

from lipbench.models.checkpoint import save_checkpoint
from lipbench.models.clamping import EvalClamped


class BM3D(EvalClamped):
    """BM3D with the noise level it is told (both stages, the package's default profile), image by image."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        out = [bm3d.bm3d(image[0].double().numpy(), sigma_psd=self.sigma) for image in x.cpu()]
        return torch.from_numpy(np.stack(out)[:, None]).to(x)


def build(sigma: float) -> BM3D:
    return BM3D(sigma)


def main(sigma: str, out: str) -> None:
    config = {"name": "bm3d_denoiser:build", "sigma": float(sigma)}
    payload = {"model_config": config, "model": {}, "train_config": {"sigma": float(sigma)}, "label": "bm3d"}
    save_checkpoint(payload, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
