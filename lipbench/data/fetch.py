"""``lipbench fetch``: download the public datasets and kernels, verify every file by SHA-256.

Each :class:`Source` installs a fixed set of files under the data root; their digests ship with
lipbench (``lipbench/data/SHA256SUMS``). A file is written only after its digest matched, through a
temporary file and a rename, so a failed or interrupted fetch never leaves a corrupt file in place.
Files already present and verified are not fetched again; an interrupted archive download resumes
with an HTTP Range request.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import IO, Literal

from tqdm import tqdm

from lipbench.plumbing.errors import ChecksumError, FetchError
from lipbench.plumbing.io import atomic_write

DOWNLOADS = ".downloads"
CHUNK = 1 << 20
TIMEOUT_S = 60
_GH = "https://raw.githubusercontent.com"
_DNCNN = f"{_GH}/cszn/DnCNN/e93b27812d3ff523a3a79d19e5e50d233d7a8d0a"
_DPIR = f"{_GH}/cszn/DPIR/15bca3fcc1f3cc51a1f99ccf027691e278c19354"


@cache
def checksums() -> dict[str, str]:
    """SHA-256 digest of every installable file, by path relative to the data root."""
    text = resources.files("lipbench.data").joinpath("SHA256SUMS").read_text(encoding="utf-8")
    return {path: digest for digest, path in (line.split(maxsplit=1) for line in text.splitlines() if line)}


@dataclass(frozen=True)
class Source:
    """Where a group of files comes from.

    ``kind``: ``"tar"`` — one archive; members under ``archive_prefix`` land under ``dest``.
    ``"file"`` — one file, installed at ``dest``. ``"files"`` — one URL per file: ``url`` is a base
    to which each file's path below ``dest`` is appended.
    """

    name: str
    kind: Literal["tar", "file", "files"]
    url: str
    dest: str
    description: str
    default: bool = False
    archive_prefix: str = ""

    def files(self) -> list[str]:
        """Paths (relative to the data root) that this source installs."""
        if self.kind == "file":
            return [self.dest]
        return sorted(p for p in checksums() if p.startswith(self.dest))


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "bsds500",
            "tar",
            "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz",
            "BSDS500/",
            "BSDS500 images, train/val/test (Berkeley BSR tarball, about 70 MB)",
            default=True,
            archive_prefix="BSR/BSDS500/data/images/",
        ),
        Source(
            "levin",
            "file",
            f"{_DPIR}/kernels/Levin09.mat",
            "kernels/Levin09.mat",
            "the 8 Levin et al. 2009 motion kernels (cszn/DPIR)",
            default=True,
        ),
        Source(
            "pnp-mmo-kernels",
            "files",
            f"{_GH}/yodai49/PnP-PDS_tciround2/0a47da7e0c2b84200a1568e5b1682edd3f7b7329/blur_models/",
            "kernels/pnp_mmo_blur_models/",
            "PnP-MMO's blur_1..8, gaussian_1_6, square_7 .mat files",
        ),
        Source(
            "irestnet-kernels",
            "files",
            f"{_GH}/mccorbineau/iRestNet/5015fa86ae36899415826e37d6bed75df6f6a265/Datasets/Testsets/",
            "kernels/irestnet_testsets/",
            "iRestNet's 25x25 test kernels (gaussian_1_6, square_7, motion3, motion8, ...)",
        ),
        Source("bsd68-dncnn", "files", f"{_DNCNN}/testsets/BSD68/", "BSD68/", "DnCNN's grey BSD68 PNGs"),
        Source("set12", "files", f"{_DNCNN}/testsets/Set12/", "Set12/", "Set12 grey test images"),
        Source(
            "train400",
            "files",
            f"{_DNCNN}/TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400/",
            "Train400/",
            "DnCNN's 400 grey 180x180 training images",
        ),
        Source("set3c", "files", f"{_DPIR}/testsets/set3c/", "Set3C/", "Set3C colour test images"),
        Source(
            "cbsd68",
            "files",
            f"{_GH}/cszn/FFDNet/e787f46df2f374ff3591186706229cb9a0591fea/testsets/CBSD68/",
            "CBSD68/",
            "FFDNet's colour BSD68 PNGs",
        ),
    )
}
DEFAULT_SOURCES = tuple(name for name, s in SOURCES.items() if s.default)


@dataclass
class SourceReport:
    """What fetching or verifying one source found."""

    name: str
    present: list[str] = field(default_factory=list)  # already there and verified
    installed: list[str] = field(default_factory=list)  # fetched now and verified
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def safe_target(root: Path, relpath: str) -> Path:
    """``root / relpath``, refusing absolute paths and anything that escapes ``root``."""
    norm = posixpath.normpath(relpath)
    if relpath.startswith(("/", "\\")) or os.path.isabs(relpath) or norm == ".." or norm.startswith("../"):
        raise FetchError(f"refusing archive member {relpath!r}: its path leaves the data root {root}")
    target = (root / norm).resolve()
    if not target.is_relative_to(root.resolve()):
        raise FetchError(f"refusing archive member {relpath!r}: its path leaves the data root {root}")
    return target


def _select(names: Iterable[str] | None) -> list[Source]:
    chosen = list(DEFAULT_SOURCES if names is None else names)
    unknown = [n for n in chosen if n not in SOURCES]
    if unknown:
        raise FetchError(f"unknown data source(s) {unknown}: choose from {', '.join(SOURCES)}")
    return [SOURCES[n] for n in chosen]


def verify(root: Path, names: Iterable[str] | None = None) -> list[SourceReport]:
    """Check every file of the chosen sources (default: the default ones) against its digest."""
    digests = checksums()
    reports = []
    for source in _select(names):
        report = SourceReport(source.name)
        for rel in source.files():
            path = root / rel
            if not path.is_file():
                report.missing.append(rel)
            elif sha256_file(path) != digests[rel]:
                report.corrupt.append(rel)
            else:
                report.present.append(rel)
        reports.append(report)
    return reports


def _open_url(url: str, offset: int = 0) -> IO[bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": "lipbench-fetch"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(
            f"could not download {url} ({reason}): check the network, or point `--source-url NAME=URL` at a mirror"
        ) from exc


def _copy_stream(response: IO[bytes], out: IO[bytes], label: str, progress: bool, total: int | None = None) -> str:
    h = hashlib.sha256()
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False) as bar:
        try:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                h.update(block)
                bar.update(len(block))
        except OSError as exc:
            raise FetchError(
                f"download of {label} was interrupted ({exc}): run `lipbench fetch` again to resume"
            ) from exc
    return h.hexdigest()


class _DigestMismatch(Exception):
    """Raised inside an atomic write to discard a file whose digest is wrong."""

    def __init__(self, digest: str) -> None:
        self.digest = digest


def _write_verified(stream: IO[bytes], target: Path, expected: str, label: str, progress: bool) -> None:
    """Copy ``stream`` to ``target`` through a temporary file renamed only if the digest matches."""
    with atomic_write(target) as out:
        digest = _copy_stream(stream, out, label, progress)
        if digest != expected:
            raise _DigestMismatch(digest)


def _install_download(url: str, root: Path, rel: str, progress: bool) -> None:
    """Download one file straight to ``root/rel``, verified before it is renamed into place."""
    expected = checksums()[rel]
    with _open_url(url) as response:
        try:
            _write_verified(response, safe_target(root, rel), expected, rel, progress)
        except _DigestMismatch as bad:
            raise ChecksumError(
                f"digest mismatch for {rel} downloaded from {url}: expected sha256 {expected}, got {bad.digest}; "
                "the file was not installed (the source or mirror serves a different file)"
            ) from None


def _download_archive(url: str, part: Path, progress: bool) -> Path:
    """Download ``url`` to ``part`` (resuming a partial download), then drop the ``.part`` suffix."""
    part.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    with _open_url(url, offset) as response:
        resumed = offset > 0 and getattr(response, "status", 200) == 206
        length = response.headers.get("Content-Length")
        total = int(length) + (offset if resumed else 0) if length else None
        with open(part, "ab" if resumed else "wb") as out:
            _copy_stream(response, out, part.name.removesuffix(".part"), progress, total)
    done = part.with_suffix("")
    os.replace(part, done)
    return done


def _extract(archive: Path, source: Source, root: Path, wanted: set[str]) -> list[str]:
    """Extract the wanted members of ``archive``, each verified before it is renamed into place."""
    digests = checksums()
    installed, corrupt = [], []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if not member.name.startswith(source.archive_prefix):
                    continue
                rel = source.dest + member.name[len(source.archive_prefix) :]
                target = safe_target(root, rel)  # guard every member we might write
                if rel not in wanted:
                    continue
                if not member.isfile():
                    raise FetchError(f"refusing archive member {member.name!r} of {archive}: not a regular file")
                fh = tar.extractfile(member)
                assert fh is not None  # regular files always have a payload
                try:
                    _write_verified(fh, target, digests[rel], rel, progress=False)
                    installed.append(rel)
                except _DigestMismatch:
                    corrupt.append(rel)
    except (tarfile.TarError, EOFError, OSError) as exc:
        archive.unlink(missing_ok=True)
        raise FetchError(f"archive {archive} is corrupt ({exc}); it was deleted: run `lipbench fetch` again") from exc
    if corrupt:
        archive.unlink(missing_ok=True)
        raise ChecksumError(
            f"digest mismatch for {len(corrupt)} file(s) from {source.url}: {', '.join(corrupt[:5])}"
            f"{' …' if len(corrupt) > 5 else ''}; they were not installed (the archive was deleted)"
        )
    lacking = sorted(wanted - set(installed))
    if lacking:
        raise FetchError(f"archive {archive} lacks {len(lacking)} expected file(s), e.g. {lacking[0]}")
    archive.unlink()
    return installed


def fetch(
    root: Path,
    names: Iterable[str] | None = None,
    urls: Mapping[str, str] | None = None,
    *,
    progress: bool | None = None,
) -> list[SourceReport]:
    """Install the chosen sources (default: BSDS500 and the Levin kernels) under ``root``.

    ``urls`` overrides a source's URL by name (a mirror, a local server, a ``file://`` path).
    """
    urls = dict(urls or {})
    sources = _select(names)
    unknown = sorted(set(urls) - set(SOURCES))
    if unknown:
        raise FetchError(f"--source-url given for unknown source(s) {unknown}: choose from {', '.join(SOURCES)}")
    if progress is None:
        progress = sys.stderr.isatty()
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        return _fetch_sources(root, sources, urls, progress)
    finally:  # an empty download folder (or data root this call made) is not left behind
        for folder in (root / DOWNLOADS, *([root] if created else [])):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _fetch_sources(root: Path, sources: list[Source], urls: Mapping[str, str], progress: bool) -> list[SourceReport]:
    reports = []
    for source, before in zip(sources, verify(root, [s.name for s in sources]), strict=True):
        url = urls.get(source.name, source.url)
        report = SourceReport(source.name, present=before.present)
        for rel in before.corrupt:  # known bad: never leave them in place
            (root / rel).unlink()
        todo = before.missing + before.corrupt
        if source.kind == "tar" and todo:
            part = root / DOWNLOADS / (posixpath.basename(url.split("?")[0]) + ".part")
            report.installed = _extract(_download_archive(url, part, progress), source, root, set(todo))
        else:
            for rel in todo:
                file_url = url if source.kind == "file" else url + rel[len(source.dest) :]
                _install_download(file_url, root, rel, progress)
                report.installed.append(rel)
        reports.append(report)
    return reports
