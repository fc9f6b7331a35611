"""A user's own denoiser, plugged into lipbench by name: ``toy_denoiser:make`` (this folder on
PYTHONPATH). Also the wrong kinds of factory, for the error messages."""

from __future__ import annotations

import torch
from torch import nn


class Toy(nn.Module):
    """``J(x) = x + conv(relu(conv(x)))``: a two-layer residual denoiser."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.inner = nn.Conv2d(1, width, 3, padding=1)
        self.outer = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.outer(torch.relu(self.inner(x)))


def make(width: int = 4) -> nn.Module:
    return Toy(width)


def not_a_module(width: int = 4) -> str:
    return f"a toy of width {width}"


NOT_CALLABLE = 3


def broken(width: int = 4) -> nn.Module:
    raise ValueError(f"no toy of width {width} today")
