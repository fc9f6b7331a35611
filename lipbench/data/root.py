"""Where the data lives: an explicit argument, else ``LIPBENCH_DATA``, else ``resources/data``."""

from __future__ import annotations

import os
from pathlib import Path

from lipbench.plumbing.errors import DataError

ENV_VAR = "LIPBENCH_DATA"
DEFAULT_ROOT = Path("resources") / "data"
FIX_HINT = f"run `lipbench fetch` (or `lipbench fetch --root DIR`) or set {ENV_VAR} to a data folder"


def data_root(root: str | os.PathLike[str] | None = None, *, must_exist: bool = True) -> Path:
    """Resolve the data root: ``root`` if given, else ``$LIPBENCH_DATA``, else ``resources/data``."""
    if root is not None:
        path, origin = Path(root), "the root argument"
    elif os.environ.get(ENV_VAR):
        path, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        path, origin = DEFAULT_ROOT, "the default data root"
    path = path.expanduser()
    if must_exist and not path.is_dir():
        raise DataError(f"data root {path} (from {origin}) does not exist: {FIX_HINT}")
    return path


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise a :class:`DataError` that says how to get it."""
    if not path.is_file():
        raise DataError(f"{what}: {path} is missing: {FIX_HINT}")
    return path
