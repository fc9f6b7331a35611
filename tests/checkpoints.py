"""The tests' tiny checkpoints, built one way (the session fixtures of ``conftest.py`` build each once):

* :func:`save_model`: any model's weights as a lipbench checkpoint (what ``load_model`` reads);
* :func:`random_dncnn`: a DnCNN with seeded random weights (no training: PnP and Lipschitz steps);
* :func:`trained`: a real ``lipbench train`` run of :data:`TINY_TRAIN` (or a variant of it);
* :func:`with_nan_weight`: a copy of a checkpoint with one weight tensor set to NaN.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lipbench.models import DnCNN, read_checkpoint, save_checkpoint
from lipbench.steps.train import TrainConfig, train

# 12 steps of a 4-layer, 8-channel DnCNN on 24×24 patches of 8 images, with the penalty (λ = 1e-3),
# a checkpoint (and a probe of the converged ‖∂Q‖²) every 4 steps and the LR divided by 10 every 5
TINY_TRAIN = TrainConfig(
    model_kwargs={"depth": 4, "width": 8},
    dataset="train400",
    max_images=8,
    patch_size=24,
    batch_size=4,
    steps=12,
    lr=1e-3,
    lr_step=5,
    checkpoint_every=4,
    lam=1e-3,
    power_iters=3,
)
# the smallest run that writes a model.pt: 2 steps of a 2-layer, 4-channel net, no penalty, no probe
SMALLEST_TRAIN = TrainConfig(
    model_kwargs={"depth": 2, "width": 4},
    dataset="train400",
    max_images=2,
    patch_size=16,
    batch_size=2,
    steps=2,
    probe_size=0,
)


def tiny_config(base: TrainConfig = TINY_TRAIN, **changes: Any) -> TrainConfig:
    """``base`` with ``changes`` (a ``TrainConfig`` checks them as ``lipbench train`` does)."""
    return dataclasses.replace(base, **changes)


def trained(
    out: str | Path, config: TrainConfig = TINY_TRAIN, *, root: str | Path | None = None, **changes: Any
) -> Path:
    """``lipbench train`` of ``config`` (with ``changes``) into the folder ``out``, quiet, its images
    from the data root ``root`` (default: ``$LIPBENCH_DATA``); returns its ``model.pt``."""
    return train(tiny_config(config, **changes), out, root=None if root is None else str(root), progress=False)


def save_model(path: str | Path, model: nn.Module, model_config: dict[str, Any], **entries: Any) -> Path:
    """``model``'s weights as a checkpoint: ``model_config`` is the registered name and its keyword
    arguments (``{"name": "dncnn", "depth": 3, ...}``); ``entries``: more of it (``train_config``)."""
    save_checkpoint({"model": model.state_dict(), "model_config": model_config, **entries}, path)
    return Path(path)


def random_dncnn(path: str | Path, depth: int = 3, width: int = 8, seed: int = 0, sigma: float = 0.009) -> Path:
    """A DnCNN whose weights are PyTorch's default initialisation under ``torch.manual_seed(seed)``,
    saved as trained for noise ``sigma`` (read by ``lipbench lipschitz``/``denoise``). The global
    RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the random test denoiser's weights
        model = DnCNN(depth=depth, width=width)
    return save_model(path, model, {"name": "dncnn", "depth": depth, "width": width}, train_config={"sigma": sigma})


def with_nan_weight(source: str | Path, path: str | Path) -> Path:
    """A copy of the checkpoint ``source`` whose first weight tensor is all NaN (a diverged training)."""
    payload = torch.load(source, weights_only=True)  # not read_checkpoint: the copy must not be checked
    name = next(iter(payload["model"]))
    payload["model"][name] = payload["model"][name].clone().fill_(float("nan"))
    torch.save(payload, path)
    return Path(path)


def weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights a checkpoint holds."""
    return read_checkpoint(path)["model"]
