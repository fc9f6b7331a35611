"""Blur kernels: the 8 Levin et al. (2009) motion kernels, Gaussian and uniform kernels, files.

Every kernel is returned as a float32 2-D tensor and validated first: finite, non-negative,
odd square size, sum 1 within 1e-6 (checked in float64). Names:

* ``levin1`` … ``levin8``: from ``kernels/Levin09.mat`` (DPIR's MATLAB v7.3 file, read with h5py
  and transposed), else from ``kernels/pnp_mmo_blur_models/blur_<k>.mat`` (key ``blur``); both hold
  the same arrays, oriented as PnP-MMO's ``blur_<k>.mat``.
* ``gaussian`` (``size``, ``std``), ``uniform`` (``size``); aliases ``gaussian_1_6`` (25×25, std 1.6,
  paper 1's kernel), ``gaussian_1_0`` (9×9, std 1, paper 2's) and ``square_7`` (7×7 uniform).
* a path to a ``.mat`` (``key``, default ``blur``) or ``.npy`` file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lipbench.data.root import FIX_HINT, data_root
from lipbench.plumbing.errors import KernelError

LEVIN_FILE = Path("kernels") / "Levin09.mat"
PNP_MMO_DIR = Path("kernels") / "pnp_mmo_blur_models"
LEVIN_NAMES = tuple(f"levin{k}" for k in range(1, 9))
GAUSSIAN_ALIASES = {"gaussian_1_6": (25, 1.6), "gaussian_1_0": (9, 1.0)}  # name: (size, std)
KERNEL_NAMES = (*LEVIN_NAMES, "gaussian", "uniform", *GAUSSIAN_ALIASES, "square_7")
SUM_TOL = 1e-6


def validate_kernel(kernel: np.ndarray | torch.Tensor, source: str, *, normalised: bool = True) -> torch.Tensor:
    """Check a blur kernel and return it as float32; raise :class:`KernelError` naming ``source``.

    ``normalised=False`` checks only the shape and finiteness (any sum, negative entries allowed)."""
    k = np.asarray(kernel.detach().cpu() if isinstance(kernel, torch.Tensor) else kernel, dtype=np.float64)
    problem = None
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        problem = f"has shape {k.shape}; a kernel must be a 2-D array of odd square size (e.g. 19×19)"
    elif not np.isfinite(k).all():
        problem = "contains NaN or infinite values"
    elif normalised and (k < 0).any():
        problem = f"has negative entries (min {k.min():.3g}); blur kernels must be non-negative"
    elif normalised and abs(k.sum() - 1.0) > SUM_TOL:
        problem = f"sums to {k.sum():.9g}, not 1 (tolerance {SUM_TOL:g}); normalise it (k / k.sum())"
    if problem:
        raise KernelError(f"kernel {source} {problem}")
    return torch.from_numpy(k.astype(np.float32))


def gaussian_kernel(size: int = 25, std: float = 1.6) -> torch.Tensor:
    """Normalised isotropic Gaussian on a ``size×size`` grid centred on the middle pixel."""
    if size < 1 or size % 2 == 0 or not std > 0:
        raise KernelError(f"gaussian kernel needs an odd size >= 1 and std > 0, got size={size}, std={std}")
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * std**2))
    return validate_kernel(g / g.sum(), f"gaussian(size={size}, std={std})")


def uniform_kernel(size: int = 7) -> torch.Tensor:
    """Normalised ``size×size`` box kernel."""
    if size < 1 or size % 2 == 0:
        raise KernelError(f"uniform kernel needs an odd size >= 1, got size={size}")
    return validate_kernel(np.full((size, size), 1.0 / size**2), f"uniform(size={size})")


def _read_mat(path: Path, key: str) -> np.ndarray:
    """Variable ``key`` of a MATLAB file (v5 via scipy, v7.3/HDF5 via h5py, transposed back)."""
    import h5py
    import scipy.io

    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                content = {k: np.asarray(f[k]).T for k in f if k == key} or dict.fromkeys(f)
        else:
            content = scipy.io.loadmat(path)
    except Exception as exc:  # the parsers raise many types on a corrupt file
        raise KernelError(f"kernel file {path} is not a readable .mat file ({exc!r})") from exc
    if key not in content:
        keys = sorted(k for k in content if not k.startswith(("__", "#")))
        raise KernelError(f"kernel file {path} has no variable {key!r} (it has {keys})")
    return np.asarray(content[key])


def _levin(index: int, root: Path) -> tuple[np.ndarray, str]:
    levin = root / LEVIN_FILE
    if levin.is_file():
        import h5py

        try:
            with h5py.File(levin, "r") as f:
                ref = f["kernels"][index - 1, 0]
                # h5py sees MATLAB's column-major arrays transposed.
                return np.asarray(f[ref]).T, f"{levin} (kernel {index})"
        except Exception as exc:  # h5py raises many types on a corrupt file
            raise KernelError(f"kernel file {levin} is unreadable ({exc}): delete it and run `lipbench fetch`") from exc
    single = root / PNP_MMO_DIR / f"blur_{index}.mat"
    if single.is_file():
        return _read_mat(single, "blur"), str(single)
    raise KernelError(f"kernel levin{index}: neither {levin} nor {single} exists: {FIX_HINT}")


def load_kernel(
    name: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    size: int | None = None,
    std: float | None = None,
    key: str = "blur",
) -> torch.Tensor:
    """Load and validate a blur kernel by name or file path (see the module docstring)."""
    text = os.fspath(name)
    if text in LEVIN_NAMES:
        array, source = _levin(int(text[-1]), data_root(root))
        return validate_kernel(array, source)
    if text == "gaussian":
        return gaussian_kernel(25 if size is None else size, 1.6 if std is None else std)
    if text in GAUSSIAN_ALIASES:
        return gaussian_kernel(*GAUSSIAN_ALIASES[text])
    if text == "uniform":
        return uniform_kernel(7 if size is None else size)
    if text == "square_7":
        return uniform_kernel(7)
    path = Path(text)
    if path.suffix in (".mat", ".npy"):
        if not path.is_file():
            raise KernelError(f"kernel file {path} does not exist")
        if path.suffix == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise KernelError(f"kernel file {path} is not a readable .npy array ({exc})") from exc
        else:
            array = _read_mat(path, key)
        return validate_kernel(array, str(path))
    raise KernelError(f"unknown kernel {text!r}: use one of {', '.join(KERNEL_NAMES)}, or a path to a .mat/.npy file")
