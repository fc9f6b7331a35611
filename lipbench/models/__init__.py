"""Denoisers (DnCNN, a certified 1-Lipschitz one, TV) and a registry, so a config names a model,
or plugs in its own as ``module:factory``."""

from lipbench.models.certified import CertifiedDenoiser
from lipbench.models.checkpoint import (
    CheckpointError,
    denoiser_label,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from lipbench.models.dncnn import DnCNN
from lipbench.models.registry import MODELS, build, register, resolve
from lipbench.models.tv import TVDenoiser

__all__ = [
    "MODELS",
    "CertifiedDenoiser",
    "CheckpointError",
    "DnCNN",
    "TVDenoiser",
    "build",
    "denoiser_label",
    "load_model",
    "read_checkpoint",
    "register",
    "resolve",
    "save_checkpoint",
]
