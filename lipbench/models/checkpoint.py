"""Checkpoints: ``torch.save`` through an atomic rename; ``torch.load(weights_only=True)`` only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lipbench.models.registry import build
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import atomic_write


class CheckpointError(LipbenchError):
    """A checkpoint is missing, unreadable, or lacks what the caller needs."""


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``payload`` atomically: readers see the previous file or the new one, never half of one."""
    with atomic_write(path) as fh:
        torch.save(payload, fh)


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``), with one clear error on failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: train it first (`lipbench train`) or fix the path")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable or not a lipbench checkpoint ({reason})") from exc
    if not isinstance(payload, dict) or "model" not in payload or "model_config" not in payload:
        raise CheckpointError(f"checkpoint {path} has no 'model'/'model_config' entries: not a lipbench checkpoint")
    bad = nonfinite_entries(payload["model"])
    if bad:
        raise CheckpointError(
            f"checkpoint {path} has non-finite weights ({', '.join(bad[:3])}): its training diverged; retrain it"
        )
    return payload


def nonfinite_entries(state: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict holding NaN or infinite values."""
    return [name for name, t in state.items()
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all()]  # fmt: skip


def denoiser_label(payload: dict[str, Any]) -> str:
    """The denoiser's name in the tables: the label it was trained under, else its model's name."""
    return str(payload.get("label") or payload["model_config"]["name"])


def load_model(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu", payload: dict[str, Any] | None = None
) -> nn.Module:
    """Rebuild the model a checkpoint describes (``model_config``: name + kwargs) and load its weights.

    ``payload``: the checkpoint already read with :func:`read_checkpoint` (saves reading it twice).
    """
    payload = read_checkpoint(path, map_location) if payload is None else payload
    config = dict(payload["model_config"])
    model = build(config.pop("name"), **config)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit its own model_config ({exc})") from exc
    return model.to(map_location).eval()
