"""A registry of denoiser architectures, so configs and checkpoints name a model by string."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from lipbench.errors import LipbenchError

M = TypeVar("M", bound=Callable[..., nn.Module])
MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make an architecture buildable as ``build(name, **kwargs)``."""

    def decorate(factory: M) -> M:
        if name in MODELS and MODELS[name] is not factory:
            raise LipbenchError(f"model name {name!r} is already registered to {MODELS[name]!r}")
        MODELS[name] = factory
        return factory

    return decorate


def build(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the registered architecture ``name`` with ``kwargs``."""
    if name not in MODELS:
        raise LipbenchError(f"unknown model {name!r}: registered models are {', '.join(sorted(MODELS))}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as exc:
        raise LipbenchError(f"model {name!r} does not accept these arguments {kwargs}: {exc}") from exc
