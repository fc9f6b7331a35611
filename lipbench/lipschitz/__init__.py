"""Jacobian spectral norms, the firm-nonexpansiveness penalty and certified upper bounds."""

from lipbench.lipschitz.bounds import UpperBound, conv_norm_bound, conv_norm_circular, upper_bound
from lipbench.lipschitz.linearize import (
    Autograd,
    PiecewiseLinear,
    Reflected,
    SuppliesLinearization,
    linearize,
    piecewise_linear,
    supports_fast_path,
)
from lipbench.lipschitz.penalty import Penalty, fne_penalty, interpolate
from lipbench.lipschitz.solver import LipschitzError, SpectralNorm
from lipbench.lipschitz.spectral import SOLVERS, spectral_norm

__all__ = [
    "SOLVERS",
    "Autograd",
    "LipschitzError",
    "Penalty",
    "PiecewiseLinear",
    "Reflected",
    "SpectralNorm",
    "SuppliesLinearization",
    "UpperBound",
    "conv_norm_bound",
    "conv_norm_circular",
    "fne_penalty",
    "interpolate",
    "linearize",
    "piecewise_linear",
    "spectral_norm",
    "supports_fast_path",
    "upper_bound",
]
