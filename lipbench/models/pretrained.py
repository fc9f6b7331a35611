"""A pretrained denoiser from elsewhere: a model (registered, or ``module:factory``) and a weights file
(a state dict, verified by its SHA-256), checked and wrapped into a lipbench checkpoint, so every
step and table takes it as it takes a trained one (``lipbench pretrained``, ``lipbench certify``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lipbench.data.fetch import sha256_file
from lipbench.models.checkpoint import CheckpointError, nonfinite_entries
from lipbench.models.registry import build

SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHECK_SIDE = 40  # side of the test image a denoiser must return unchanged in shape


def read_weights(path: str | os.PathLike[str], sha256: str | None) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (``torch.load(weights_only=True)``; a dict under ``state_dict`` or
    ``model`` is taken too), once its SHA-256 is ``sha256``; refused if any tensor is non-finite."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights {path} do not exist: fix the path")
    if sha256 is None or not SHA256.match(sha256.lower()):
        raise CheckpointError(
            f"weights {path}: give their SHA-256 (64 hex digits, `sha256sum {path}`), got {sha256!r}: "
            "lipbench loads only weights it can verify"
        )
    found = sha256_file(path)
    if found != sha256.lower():
        raise CheckpointError(
            f"weights {path} have SHA-256 {found}, not the {sha256.lower()} given: a wrong or altered file"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign files
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"weights {path} are not a torch state dict ({reason})") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"weights {path} hold a {type(state).__name__}, not a state dict (name → tensor)")
    bad = nonfinite_entries(state)
    if bad:
        raise CheckpointError(f"weights {path} have non-finite values ({', '.join(bad[:3])}): refusing them")
    return state


def check_denoiser(model: nn.Module, name: str, channels: int = 1) -> None:
    """Refuse a denoiser whose output is not an image of its input's shape, or not finite, on a
    ``CHECK_SIDE``² test image in [0, 1]."""
    x = torch.rand(1, channels, CHECK_SIDE, CHECK_SIDE, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:  # whatever the user's network raises on a plain image
        shape = f"1×{channels}×{CHECK_SIDE}×{CHECK_SIDE}"
        raise CheckpointError(f"denoiser {name} fails on a {shape} image ({type(exc).__name__}: {exc})") from exc
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckpointError(
            f"denoiser {name} turns a {tuple(x.shape)} image into {shape}: a denoiser must return an image of its "
            "input's shape (wrap it, e.g. to pad to a multiple of its downsampling)"
        )
    if not torch.isfinite(out).all():
        raise CheckpointError(f"denoiser {name} returns non-finite values on a test image in [0, 1]")


def pretrained_payload(
    model: str,
    model_kwargs: dict[str, Any],
    weights: str | os.PathLike[str] | None,
    sha256: str | None,
    label: str,
    channels: int = 1,
) -> dict[str, Any]:
    """A lipbench checkpoint payload of ``model`` built with ``model_kwargs``, its weights loaded from
    ``weights`` (verified, strict) or left as the factory made them (None: e.g. a factory that loads
    its own), after :func:`check_denoiser`. Every problem raises one :class:`CheckpointError`."""
    net = build(model, **model_kwargs)
    if weights is not None:
        state = read_weights(weights, sha256)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise CheckpointError(f"weights {weights} do not fit model {model!r} {model_kwargs}: {detail}") from exc
    else:
        bad = nonfinite_entries(net.state_dict())
        if bad:
            raise CheckpointError(f"model {model!r} has non-finite weights ({', '.join(bad[:3])})")
    check_denoiser(net, label, channels)
    return {
        "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "model_config": {"name": model, **model_kwargs},
        "label": label,
        "pretrained": {"weights": None if weights is None else str(weights), "sha256": sha256},
    }
