"""Datasets, blur kernels, training patches and the verified fetch step."""

from lipbench.data.fetch import DEFAULT_SOURCES, SOURCES, fetch, verify
from lipbench.data.images import BSD10_IDS, BSD68_IDS, DATASETS, centre_crop, image_ids, load_images, read_image
from lipbench.data.kernels import KERNEL_NAMES, gaussian_kernel, load_kernel, uniform_kernel, validate_kernel
from lipbench.data.patches import PatchSampler, dihedral
from lipbench.data.root import ENV_VAR, data_root

__all__ = [
    "BSD10_IDS",
    "BSD68_IDS",
    "DATASETS",
    "DEFAULT_SOURCES",
    "ENV_VAR",
    "KERNEL_NAMES",
    "SOURCES",
    "PatchSampler",
    "centre_crop",
    "data_root",
    "dihedral",
    "fetch",
    "gaussian_kernel",
    "image_ids",
    "load_images",
    "load_kernel",
    "read_image",
    "uniform_kernel",
    "validate_kernel",
    "verify",
]
