"""The ``lipbench`` command: one subcommand per pipeline step (a module of :mod:`lipbench.steps`,
whose ``COMMAND`` declares its options and runs it). Only the chosen step's module is imported."""

from __future__ import annotations

import argparse
import importlib
import sys
import typing
from collections.abc import Sequence

from lipbench import __version__
from lipbench.plumbing.command import Command, apply_preset, build_command
from lipbench.plumbing.errors import LipbenchError

# name: (module, under lipbench.steps unless dotted; summary); the workflow's rules run the steps, one per rule
STEPS: dict[str, tuple[str, str]] = {
    "fetch": ("fetch", "download the datasets and kernels, verifying every file by SHA-256"),
    "verify": ("verify", "check installed data files against the shipped SHA-256 digests"),
    "degrade": ("degrade", "blur + noise a dataset; write observations.csv (PSNR/SSIM) and PNGs"),
    "train": ("train", "train one denoiser (one λ) with the firm-nonexpansiveness penalty"),
    "pretrained": ("pretrained", "a denoiser trained elsewhere (module:factory + verified weights) as a checkpoint"),
    "tune-tv": ("tune_tv", "the TV baseline: choose its weight on tuning images (not the test set)"),
    "pnp": ("pnp", "PnP-PGD deblurring of a dataset × kernels with one denoiser"),
    "lipschitz": ("lipschitz", "‖∂J‖, ‖∂Q‖² per image for J, J at T_g x and the D4 mean J_G"),
    "denoise": ("denoise", "denoising PSNR of a checkpoint on a test set (BSD68) at its noise level"),
    "certify": ("certify", "is a denoiser firmly nonexpansive where PnP goes? bounds, equivariance, PnP vs TV"),
    "aggregate": ("aggregate", "results table with provenance + Lipschitz, PSNR, convergence tables"),
    "grid": ("grid", "is the λ grid calibrated? max ‖∂Q‖² per λ from 'no effect' to <= 1"),
    "figures": ("figures", "the papers' figures (PDF + PNG) from PnP folders and Lipschitz tables"),
    "compare": ("compare", "metric regression: compare two results.csv tables; exit 1 on a regression"),
    "summary": ("summary", "the headline table of a results.csv: Lipschitz, PnP and denoising PSNR per denoiser"),
    "publish": ("publish", "copy a finished run's tables, figures, timings (and models) to results/<name>/"),
    "check-config": (
        "lipbench.workflow.check",
        "check workflow configs as the Snakefile does, naming the file, line or key",
    ),
}


def step_module(name: str) -> str:
    """The module ``lipbench <name>`` runs (``train`` → ``lipbench.steps.train``)."""
    module = STEPS[name][0]
    return module if "." in module else f"lipbench.steps.{module}"


def command(name: str) -> Command:
    """The :class:`Command` of ``lipbench <name>`` (imports only that step's module)."""
    return importlib.import_module(step_module(name)).COMMAND


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``lipbench train: error: argument --loss: invalid choice ...``."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(name: str | None = None, argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The ``lipbench`` parser; ``name``: only that step's options are built (the other steps' modules
    are not imported, for a fast start); ``argv``: its ``--protocol`` preset, if any, applied."""
    description = "lipbench: Lipschitz-constrained denoisers for plug-and-play restoration."
    parser = Parser(prog="lipbench", description=description)
    parser.add_argument("--version", action="version", version=f"lipbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for step, (_, summary) in STEPS.items():
        p = sub.add_parser(step, help=summary, description=summary)
        if name in (None, step):
            spec = command(step)
            build_command(p, spec)
            apply_preset(p, spec, argv)
            p.set_defaults(step=spec.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one step; a :class:`LipbenchError` becomes one line on stderr, exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    name = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(name if name in STEPS else None, argv).parse_args(argv)
    try:
        return args.step(args)
    except LipbenchError as exc:
        print(f"lipbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the checks above did not name (permissions, a full disk)
        print(f"lipbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lipbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
