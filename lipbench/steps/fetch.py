"""``lipbench fetch``: download the datasets and kernels from their public sources into the data
root, verifying every file by SHA-256 (:mod:`lipbench.data.fetch`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lipbench.plumbing.command import Command
from lipbench.plumbing.errors import LipbenchError


def source_urls(pairs: Sequence[str]) -> dict[str, str]:
    """``NAME=URL`` pairs as a mapping."""
    urls = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url:
            raise LipbenchError(f"--source-url {pair!r} is not NAME=URL (e.g. bsds500=https://mirror/BSR_bsds500.tgz)")
        urls[name] = url
    return urls


def source_arguments(p: argparse.ArgumentParser) -> None:
    """Which sources (``fetch`` and ``verify``)."""
    p.add_argument("--only", nargs="+", metavar="SOURCE", help="only these sources (default: the default ones)")
    p.add_argument("--all", action="store_true", help="every source, optional ones included")


def _arguments(p: argparse.ArgumentParser) -> None:
    source_arguments(p)
    p.add_argument(
        "--source-url",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="download one source from this URL instead (a mirror, or file:///path offline)",
    )
    p.add_argument("--list", action="store_true", help="list the sources and exit")


def run(args: argparse.Namespace) -> int:
    from lipbench.data import SOURCES, data_root, fetch

    if args.list:
        for s in SOURCES.values():
            print(f"{s.name:16} {'default ' if s.default else 'optional'} {len(s.files()):4d} files  {s.description}")
            print(f"{'':16} {s.url}")
        return 0
    root = data_root(args.root, must_exist=False)
    names = list(SOURCES) if args.all else (args.only or None)
    for report in fetch(root, names, source_urls(args.source_url), progress=False if args.quiet else None):
        print(f"{report.name}: {len(report.installed)} installed, {len(report.present)} already present and verified")
    print(f"data root {root} is ready")
    return 0


COMMAND = Command(run, arguments=_arguments, root=True, quiet=True)
