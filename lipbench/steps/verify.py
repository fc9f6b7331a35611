"""``lipbench verify``: check the installed data files against the shipped SHA-256 digests."""

from __future__ import annotations

import argparse

from lipbench.plumbing.command import Command
from lipbench.plumbing.errors import LipbenchError
from lipbench.steps.fetch import source_arguments


def run(args: argparse.Namespace) -> int:
    from lipbench.data import SOURCES, data_root, verify

    root = data_root(args.root)
    names = list(SOURCES) if args.all else (args.only or None)
    bad = 0
    for report in verify(root, names):
        status = "ok" if report.ok else "FAILED"
        counts = f"{len(report.present)} verified, {len(report.missing)} missing, {len(report.corrupt)} corrupt"
        print(f"{report.name}: {status} ({counts})")
        for rel in report.corrupt[:10]:
            print(f"  corrupt: {rel}")
        for rel in report.missing[:10]:
            print(f"  missing: {rel}")
        bad += not report.ok
    if bad:
        raise LipbenchError(f"{bad} source(s) failed verification under {root}: run `lipbench fetch --root {root}`")
    return 0


COMMAND = Command(run, arguments=source_arguments, root=True)
