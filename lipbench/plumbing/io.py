"""Writing files, all atomically (a temporary file beside the target, then a rename): tables (CSV or
parquet; Markdown and LaTeX for papers), PNG images, JSON provenance; and reading tables back."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from lipbench.plumbing.errors import LipbenchError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class OutputError(LipbenchError):
    """An output cannot be written (a full disk, a read-only folder): the message names the output."""


def cannot_write(target: Path, exc: OSError) -> OutputError:
    """``exc`` (raised while writing ``target``, perhaps through a temporary file) as one message
    naming ``target`` itself."""
    reason = exc.strerror or str(exc)
    return OutputError(f"cannot write {target}: {reason}; free space or make its folder writable, then rerun")


def _new_file(target: Path, prefix: str, suffix: str) -> tuple[int, str]:
    """A temporary file beside ``target`` with the mode a plain ``open`` would give it (0666 less
    the umask; ``mkstemp`` alone makes it 0600)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise cannot_write(target, exc) from exc
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched,
    so readers never see a half-written file; an :class:`OSError` (a full disk) becomes an
    :class:`OutputError` naming ``path``.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write supports modes 'wb' and 'w', not {mode!r}")
    target = Path(path)
    fd, tmp = _new_file(target, f".{target.name}.", ".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise cannot_write(target, exc) from exc
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path for libraries that insist on writing by file name.

    The temporary name keeps ``path``'s suffix so format detection still works.
    """
    target = Path(path)
    fd, tmp = _new_file(target, f".{target.stem}.", target.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise cannot_write(target, exc) from exc
        raise


STAGING = ".staging-"


def _abandoned(name: str) -> bool:
    """Is the staging folder ``name`` (``.<out>.staging-<host>.<pid>.<random>``) one that a process of
    this machine left when it died? (Another step may be writing beside the same ``out``, and another
    node of a cluster may share the disk: their folders stay.)"""
    owner = name.rpartition(STAGING)[2].rpartition(".")[0]  # the random part has no dot, a host may
    host, _, pid = owner.rpartition(".")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike[str]) -> Iterator[Path]:
    """All or nothing for a step that writes several files into ``out``: yield an empty temporary
    folder beside it; when the block succeeds, move every file written there into ``out`` (same
    relative paths, each by a rename); when it fails, remove them all, so that ``out`` gets none.
    A folder a killed run left behind is removed at the next start. Errors name ``out``'s files,
    not the temporary ones."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in out.parent.glob(f".{out.name}{STAGING}*"):
            if _abandoned(stale.name):
                shutil.rmtree(stale, ignore_errors=True)
        owner = f"{socket.gethostname()}.{os.getpid()}."
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGING}{owner}", dir=out.parent))
    except OSError as exc:
        raise cannot_write(out, exc) from exc
    try:
        yield tmp
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        for file in files:
            target = out / file.relative_to(tmp)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(file, target)
            except OSError as exc:
                raise cannot_write(target, exc) from exc
    except OutputError as exc:
        raise OutputError(str(exc).replace(str(tmp), str(out))) from exc
    except OSError as exc:  # a write of the block's own (not through atomic_write)
        name = exc.filename
        inside = isinstance(name, str | os.PathLike) and Path(name).is_relative_to(tmp)
        raise cannot_write(out / Path(name).relative_to(tmp) if inside else out, exc) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def read_table(path: str | os.PathLike[str], required: Iterable[str] = ()) -> pd.DataFrame:
    """Read a table written by :func:`write_table`; a missing or unreadable file, or one without the
    ``required`` columns, raises :class:`LipbenchError` naming it."""
    path = Path(path)
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"image": str})
    except FileNotFoundError as exc:
        raise LipbenchError(f"table {path} does not exist: run the lipbench step that writes it") from exc
    except (OSError, ValueError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise LipbenchError(f"table {path} is unreadable ({exc}): rewrite it with the step that wrote it") from exc
    missing = sorted(set(required) - set(table.columns))
    if missing:
        raise LipbenchError(f"table {path} lacks the column(s) {missing}: is it the output of the right step?")
    return table


def read_tables(paths: Iterable[str | os.PathLike[str]], required: Iterable[str] = ()) -> pd.DataFrame:
    """:func:`read_table` of each path, concatenated (empty without paths)."""
    required = tuple(required)
    tables = [read_table(p, required) for p in paths]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def remove_outputs(folder: str | os.PathLike[str], patterns: Iterable[str]) -> None:
    """Delete the files of ``folder`` matching ``patterns`` (globs), then their folders left empty:
    a step starts by removing what its previous run wrote, so a failed run leaves none of it
    beside the outputs Snakemake removes."""
    folder = Path(folder)
    for pattern in patterns:
        for path in folder.glob(pattern):
            if path.is_file():
                path.unlink()
                if path.parent != folder and not any(path.parent.iterdir()):
                    path.parent.rmdir()


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


# text-mode LaTeX for the characters of captions and cells (``\\ensuremath`` works in either mode)
_LATEX = {
    **{c: "\\" + c for c in "&%$#_{}"},
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
    "λ": r"\ensuremath{\lambda}", "‖": r"\ensuremath{\|}", "∂": r"\ensuremath{\partial}", "²": r"\ensuremath{^2}",
    "≈": r"\ensuremath{\approx}", "≤": r"\ensuremath{\leq}", "×": r"\ensuremath{\times}", "−": "-",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """``text`` as LaTeX that compiles in text mode (specials escaped, symbols as math)."""
    return "".join(_LATEX.get(c, c) for c in text)


def to_latex(table: pd.DataFrame, caption: str) -> str:
    """A booktabs table (``Styler.to_latex``): names and cells escaped, λ as ``%g``, 4 decimals."""
    formats = {c: "{:g}".format for c in ("lam",) if c in table.columns}
    style = table.style.format(formats, precision=4, na_rep="--", escape="latex")
    style = style.format_index(escape="latex", axis=1).hide(axis="index")
    return style.to_latex(caption=latex_escape(caption), hrules=True, position="t")


def write_formatted(table: pd.DataFrame, stem: Path, caption: str, note: str = "") -> None:
    """``stem.csv``, ``stem.md`` (with ``note`` below the table) and ``stem.tex`` (``caption``)."""
    write_table(table, stem.with_suffix(".csv"))
    with atomic_write(stem.with_suffix(".md"), "w") as fh:
        fh.write(table.to_markdown(index=False, floatfmt=".4g") + (f"\n\n{note}" if note else "") + "\n")
    with atomic_write(stem.with_suffix(".tex"), "w") as fh:
        fh.write(to_latex(table, caption))
