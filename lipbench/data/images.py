"""Image datasets: fixed, documented file lists and a loader to float32 tensors in [0, 1].

Every dataset is a list of files relative to the data root, in a fixed order:

==============  ==============================================================  =========
name            files (order)                                                   colour
==============  ==============================================================  =========
``bsd10``       ``BSDS500/val/<id>.jpg`` for the 10 ids of ``BSD10_IDS``         RGB
                (protocol order = string-sorted BSDS300 test ids)
``bsd68``       ``BSDS500/val/<id>.jpg`` for ``BSD68_IDS`` (string-sorted ids,   RGB
                the order of DnCNN's ``test001 … test068``)
``cbsd68``      ``CBSD68/<id>.png`` if present, else the same BSDS500/val JPEGs  RGB
                (pixel-identical), order of ``BSD68_IDS``
``bsd68-dncnn`` ``BSD68/test001.png … test068.png`` (DnCNN's 8-bit grey files)    grey
``bsd400``      ``BSDS500/train/*.jpg`` then ``BSDS500/test/*.jpg``, each        RGB
                string-sorted (the usual 400-image training set)
``bsds500-val`` ``BSDS500/val/*.jpg`` string-sorted (100 images)                  RGB
``train400``    ``Train400/test_001.png … test_400.png`` (180×180 crops)          grey
``set12``       ``Set12/01.png … 12.png``                                         grey
``set3c``       ``Set3C/{butterfly,leaves,starfish}.png``                         RGB
==============  ==============================================================  =========

Grey conversion of RGB files: ``"mean"`` = (R + G + B) / 3 as in PnP-MMO's ``test_pnp.py``
(the default, ``grey=True``); ``"bt601"`` = 0.299 R + 0.587 G + 0.114 B (MATLAB ``rgb2gray``,
how DnCNN's BSD68 PNGs were made); ``"bt709"`` = 0.2125 R + 0.7154 G + 0.0721 B
(``skimage.color.rgb2gray``, PnP-MMO's ``train.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lipbench.data.root import FIX_HINT, data_root
from lipbench.plumbing.errors import DataError, LipbenchError

BSD10_IDS: tuple[str, ...] = (
    "101085", "101087", "102061", "103070", "105025",
    "106024", "108005", "108070", "108082", "109053",
)  # fmt: skip

BSD68_IDS: tuple[str, ...] = (
    "101085", "101087", "102061", "103070", "105025", "106024", "108005", "108070", "108082",
    "109053", "119082", "12084", "123074", "126007", "130026", "134035", "14037", "143090",
    "145086", "147091", "148026", "148089", "157055", "159008", "160068", "16077", "163085",
    "167062", "167083", "170057", "175032", "175043", "182053", "189080", "19021", "196073",
    "197017", "208001", "210088", "21077", "216081", "219090", "220075", "223061", "227092",
    "229036", "236037", "24077", "241004", "241048", "253027", "253055", "260058", "271035",
    "285079", "291000", "295087", "296007", "296059", "299086", "300091", "302008", "304034",
    "304074", "306005", "3096", "33039", "351093",
)  # fmt: skip

GREY_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "mean": (1 / 3, 1 / 3, 1 / 3),
    "bt601": (0.299, 0.587, 0.114),
    "bt709": (0.2125, 0.7154, 0.0721),
}


@dataclass(frozen=True)
class Dataset:
    """A named, ordered list of image files under the data root."""

    name: str
    colour: bool
    description: str
    min_side: int  # the smallest side of its images: the largest crop or patch it allows

    def files(self, root: Path) -> list[Path]:
        """The dataset's files under ``root``, in the documented order."""
        return _FILES[self.name](root)


def _glob_sorted(folder: Path, pattern: str, dataset: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"dataset {dataset!r}: folder {folder} is missing: {FIX_HINT}")
    files = sorted(folder.glob(pattern), key=lambda p: p.name)
    if not files:
        raise DataError(f"dataset {dataset!r}: no {pattern} files in {folder}: {FIX_HINT}")
    return files


def _cbsd68(root: Path) -> list[Path]:
    if (root / "CBSD68").is_dir():
        return [root / "CBSD68" / f"{i}.png" for i in BSD68_IDS]
    return [root / "BSDS500" / "val" / f"{i}.jpg" for i in BSD68_IDS]


_FILES = {
    "bsd10": lambda r: [r / "BSDS500" / "val" / f"{i}.jpg" for i in BSD10_IDS],
    "bsd68": lambda r: [r / "BSDS500" / "val" / f"{i}.jpg" for i in BSD68_IDS],
    "cbsd68": _cbsd68,
    "bsd68-dncnn": lambda r: [r / "BSD68" / f"test{k:03d}.png" for k in range(1, 69)],
    "bsd400": lambda r: (
        _glob_sorted(r / "BSDS500" / "train", "*.jpg", "bsd400")
        + _glob_sorted(r / "BSDS500" / "test", "*.jpg", "bsd400")
    ),
    "bsds500-val": lambda r: _glob_sorted(r / "BSDS500" / "val", "*.jpg", "bsds500-val"),
    "train400": lambda r: [r / "Train400" / f"test_{k:03d}.png" for k in range(1, 401)],
    "set12": lambda r: [r / "Set12" / f"{k:02d}.png" for k in range(1, 13)],
    "set3c": lambda r: [r / "Set3C" / f"{n}.png" for n in ("butterfly", "leaves", "starfish")],
}

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("bsd10", True, "PnP-MMO's 10 deblurring test images (BSD68 test001-010)", 321),
        Dataset("bsd68", True, "BSD68 denoising test set, from the BSDS500/val JPEGs", 321),
        Dataset("cbsd68", True, "colour BSD68", 321),
        Dataset("bsd68-dncnn", False, "DnCNN's 8-bit grey BSD68 PNGs", 321),
        Dataset("bsd400", True, "BSDS500 train + test, 400 training images", 321),
        Dataset("bsds500-val", True, "BSDS500 val (= BSDS300 test), 100 images", 321),
        Dataset("train400", False, "DnCNN's 400 grey 180x180 training crops", 180),
        Dataset("set12", False, "Set12 grey test images", 256),
        Dataset("set3c", True, "Set3C colour test images", 256),
    )
}


def _resolve_grey(grey: bool | str) -> str | None:
    if grey is False:
        return None
    rule = "mean" if grey is True else grey
    if rule not in GREY_WEIGHTS:
        raise DataError(f"unknown grey rule {grey!r}: use True (= 'mean') or one of {sorted(GREY_WEIGHTS)}")
    return rule


def read_image(path: str | os.PathLike[str], grey: bool | str = True) -> torch.Tensor:
    """Read one image file as a float32 ``C×H×W`` tensor in [0, 1].

    ``grey`` selects the RGB → grey rule (see the module docstring); ``False`` keeps RGB.
    """
    path = Path(path)
    rule = _resolve_grey(grey)
    if not path.is_file():
        raise DataError(f"image {path} is missing: {FIX_HINT}")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode not in ("L", "RGB"):
                img = img.convert("RGB")
                mode = "RGB"
            pixels = np.asarray(img, dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"image {path} is corrupt or not an image ({exc}): delete it and run `lipbench fetch` "
            "again, or check it with `lipbench verify`"
        ) from exc
    if mode == "L":
        if rule is None:
            raise DataError(f"image {path} is greyscale: load it with grey=True")
        out = pixels[None]
    elif rule is None:
        out = pixels.transpose(2, 0, 1)
    else:
        out = np.tensordot(np.asarray(GREY_WEIGHTS[rule]), pixels, axes=([0], [2]))[None]
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


def _dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def image_ids(name: str, root: str | os.PathLike[str] | None = None) -> list[str]:
    """The file stems of dataset ``name`` (e.g. BSDS ids), in the order of :func:`load_images`."""
    return [path.stem for path in _dataset(name).files(data_root(root))]


def load_images(name: str, root: str | os.PathLike[str] | None = None, grey: bool | str = True) -> list[torch.Tensor]:
    """Load dataset ``name`` as a list of float32 ``1×H×W`` (grey) or ``3×H×W`` tensors in [0, 1].

    The order is fixed and documented in this module; ``root`` defaults to :func:`data_root`.
    """
    dataset = _dataset(name)
    if grey is False and not dataset.colour:
        raise DataError(f"dataset {name!r} is greyscale only: load it with grey=True")
    base = data_root(root)
    return [read_image(path, grey) for path in dataset.files(base)]


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size×size`` window of a ``…×H×W`` tensor (odd margins favour the top-left)."""
    h, w = x.shape[-2:]
    if not 1 <= size <= min(h, w):
        raise LipbenchError(f"--crop {size} must lie between 1 and the image's smaller side ({h}×{w} image)")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]
