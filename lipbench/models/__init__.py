"""Denoisers: DnCNN and a registry so a user adds an architecture by name."""

from lipbench.models.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from lipbench.models.dncnn import DnCNN
from lipbench.models.registry import MODELS, build, register

__all__ = [
    "MODELS",
    "CheckpointError",
    "DnCNN",
    "build",
    "load_model",
    "read_checkpoint",
    "register",
    "save_checkpoint",
]
