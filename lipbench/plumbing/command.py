"""A ``lipbench`` command declared once: :class:`Command` (its settings dataclasses, the shared options
it takes, its protocol presets and the function it runs), from which :mod:`lipbench.cli` builds the
subcommand."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from lipbench.plumbing.options import add_options


@dataclasses.dataclass(frozen=True)
class Command:
    """One ``lipbench`` command: its settings dataclasses (each field an option, see
    :func:`add_options`), the shared options it takes (``out``: its help text; ``device``, ``root``,
    ``quiet``), its own other arguments, protocol ``presets`` (``--protocol NAME`` sets those
    options' defaults) and ``run``, which gets the parsed arguments and returns the exit status."""

    run: Callable[[argparse.Namespace], int]
    settings: tuple[type, ...] = ()
    out: str | None = None
    device: bool = False
    root: bool = False
    quiet: bool = False
    arguments: Callable[[argparse.ArgumentParser], None] | None = None  # the command's own other options
    skip: tuple[str, ...] = ()  # fields of ``settings`` that are not options of this command
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N"
ROOT_HELP = "data root (default: $LIPBENCH_DATA, else resources/data)"


def build_command(parser: argparse.ArgumentParser, command: Command) -> None:
    """Declare ``command``'s options on its (sub)parser: the shared ones once, here, then its settings'."""
    if command.out is not None:
        parser.add_argument("--out", required=True, help=command.out)
    if command.presets:
        names = tuple(command.presets)
        parser.add_argument("--protocol", choices=names, help=f"preset of the protocol's options ({', '.join(names)}); "
                            "the options given beside it win")  # fmt: skip
    for cls in command.settings:
        add_options(parser, cls, skip=command.skip, defaults=command.defaults)
    if command.arguments is not None:
        command.arguments(parser)
    if command.device:
        parser.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default: %(default)s)")
    if command.root:
        parser.add_argument("--root", help=ROOT_HELP)
    if command.quiet:
        parser.add_argument("--quiet", action="store_true", help="no progress bars")


def apply_preset(parser: argparse.ArgumentParser, command: Command, argv: Sequence[str]) -> None:
    """``--protocol NAME`` in ``argv``: that preset's values become the parser's defaults, so that
    options given beside it still win."""
    if not command.presets:
        return
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--protocol")  # an unknown name: the command's own parser refuses it, in one line
    known, _ = probe.parse_known_args(argv)
    if known.protocol in command.presets:
        parser.set_defaults(**command.presets[known.protocol])
