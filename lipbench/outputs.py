"""Writing results: tables (CSV or parquet), PNG images, JSON provenance — all atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from lipbench.io import atomic_path, atomic_write


def write_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """CSV, or parquet when ``path`` ends in ``.parquet``."""
    path = Path(path)
    if path.suffix == ".parquet":
        with atomic_path(path) as tmp:
            table.to_parquet(tmp, index=False)
    else:
        with atomic_write(path, "w") as fh:
            table.to_csv(fh, index=False)
    return path


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table written by :func:`write_table`."""
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"image": str})


def save_png(x: torch.Tensor, path: str | os.PathLike[str]) -> None:
    """Write a ``1×H×W`` or ``3×H×W`` image in [0, 1] as an 8-bit PNG."""
    array = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    image = Image.fromarray(array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def write_json(payload: dict[str, Any], path: str | os.PathLike[str]) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
