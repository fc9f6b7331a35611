"""A registry of denoiser architectures, so configs and checkpoints name a model by string.

A name is a registered architecture (``dncnn``, ``certified``, ``tv``) or a user's own denoiser
as ``module:factory`` (``mypackage.nets:make_denoiser``): the module is imported, ``factory``
called with the model's keyword arguments, and it must return a ``torch.nn.Module``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from lipbench.plumbing.errors import LipbenchError

M = TypeVar("M", bound=Callable[..., nn.Module])
MODELS: dict[str, Callable[..., nn.Module]] = {}
PLUGIN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make an architecture buildable as ``build(name, **kwargs)``."""

    def decorate(factory: M) -> M:
        if name in MODELS and MODELS[name] is not factory:
            raise LipbenchError(f"model name {name!r} is already registered to {MODELS[name]!r}")
        MODELS[name] = factory
        return factory

    return decorate


def resolve(name: str) -> Callable[..., nn.Module]:
    """The factory of ``name``: a registered model, or ``module:factory`` imported."""
    if name in MODELS:
        return MODELS[name]
    if not PLUGIN.match(name):
        raise LipbenchError(
            f"unknown model {name!r}: registered models are {', '.join(sorted(MODELS))}; "
            "your own denoiser is named 'module:factory' (e.g. mypackage.nets:make_denoiser)"
        )
    module_name, attribute = name.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the user's module raises on import
        raise LipbenchError(
            f"model {name!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc}); "
            "install it or add its folder to PYTHONPATH"
        ) from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise LipbenchError(
            f"model {name!r}: module {module_name!r} has no callable {attribute!r} "
            "(give a class or function that returns a torch.nn.Module)"
        )
    return factory


def build(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the model ``name`` (registered, or ``module:factory``) with ``kwargs``."""
    factory = resolve(name)
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise LipbenchError(f"model {name!r} does not accept these arguments {kwargs}: {exc}") from exc
    except Exception as exc:  # whatever a user's factory raises: one line, not a traceback
        raise LipbenchError(
            f"model {name!r} raised {type(exc).__name__} when built with {kwargs}: {exc}; fix the factory or its "
            "arguments"
        ) from exc
    if not isinstance(model, nn.Module):
        raise LipbenchError(
            f"model {name!r} returned a {type(model).__name__}, not a torch.nn.Module: "
            "the factory must build the denoiser network"
        )
    return model
