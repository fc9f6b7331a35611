"""``lipbench check-config``: check workflow configuration files as the Snakefile does, naming the
file and line, or the key, that is wrong (:mod:`lipbench.workflow.config`)."""

from __future__ import annotations

import argparse

from lipbench.plumbing.command import Command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML files given to snakemake --configfile")


def run(args: argparse.Namespace) -> int:
    from lipbench.workflow.config import check_config
    from lipbench.workflow.rules import denoisers

    for path in args.configs:
        config = check_config(path)
        print(f"{path}: ok (runs/{config['name']}, {len(denoisers(config))} denoisers)")
    return 0


COMMAND = Command(run, arguments=_arguments)
