"""The ``lipbench`` command: one subcommand per pipeline step, each a thin layer over the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lipbench import __version__
from lipbench.errors import LipbenchError


def _source_urls(pairs: Sequence[str]) -> dict[str, str]:
    urls = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url:
            raise LipbenchError(f"--source-url {pair!r} is not NAME=URL (e.g. bsds500=https://mirror/BSR_bsds500.tgz)")
        urls[name] = url
    return urls


def cmd_fetch(args: argparse.Namespace) -> int:
    from lipbench.data import SOURCES, data_root, fetch

    if args.list:
        for s in SOURCES.values():
            print(f"{s.name:16} {'default ' if s.default else 'optional'} {len(s.files()):4d} files  {s.description}")
            print(f"{'':16} {s.url}")
        return 0
    root = data_root(args.root, must_exist=False)
    names = list(SOURCES) if args.all else (args.only or None)
    for report in fetch(root, names, _source_urls(args.source_url), progress=False if args.quiet else None):
        print(f"{report.name}: {len(report.installed)} installed, {len(report.present)} already present and verified")
    print(f"data root {root} is ready")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
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


def cmd_degrade(args: argparse.Namespace) -> int:
    from lipbench.degrade import degrade_dataset

    table = degrade_dataset(
        args.dataset, args.kernels, args.sigma, Path(args.out), root=args.root,
        crop=args.crop, save_images=args.save_images,
    )  # fmt: skip
    summary = table.groupby("kernel", sort=False)[["psnr", "ssim"]].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {len(table)} rows to {Path(args.out) / 'observations.csv'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lipbench", description="lipbench: Lipschitz-constrained denoisers for plug-and-play restoration."
    )
    parser.add_argument("--version", action="version", version=f"lipbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--root", help="data root (default: $LIPBENCH_DATA, else resources/data)")
        p.add_argument("--only", nargs="+", metavar="SOURCE", help="only these sources (see `fetch --list`)")
        p.add_argument("--all", action="store_true", help="every source, optional ones included")

    p = sub.add_parser("fetch", help="download the datasets and kernels, verifying every file by SHA-256")
    data_args(p)
    p.add_argument("--source-url", action="append", default=[], metavar="NAME=URL", help="mirror for one source")
    p.add_argument("--list", action="store_true", help="list the sources and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("verify", help="check installed data files against the shipped SHA-256 digests")
    data_args(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("degrade", help="blur + noise a dataset; write observations.csv (PSNR/SSIM) and PNGs")
    p.add_argument("--dataset", default="bsd10")
    p.add_argument("--kernels", nargs="+", default=["levin1"], metavar="KERNEL")
    p.add_argument("--sigma", type=float, default=0.01, help="noise standard deviation (images in [0, 1])")
    p.add_argument("--crop", type=int, help="centre crop size (default: full images)")
    p.add_argument("--save-images", type=int, default=2, metavar="N", help="write PNGs of the first N images")
    p.add_argument("--root", help="data root (default: $LIPBENCH_DATA, else resources/data)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_degrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one subcommand; a :class:`LipbenchError` becomes one line on stderr, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LipbenchError as exc:
        print(f"lipbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lipbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
