"""``lipbench check-config``: check workflow configuration files as the Snakefile does, naming the
file and line, or the key, that is wrong (:mod:`lipbench.workflow.config`), and refusing what a job
would refuse (:mod:`lipbench.workflow.preflight`)."""

from __future__ import annotations

import argparse

from lipbench.plumbing.command import Command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML files given to snakemake --configfile")


def run(args: argparse.Namespace) -> int:
    from lipbench.workflow.config import check_config
    from lipbench.workflow.preflight import preflight
    from lipbench.workflow.rules import denoisers

    for path in args.configs:
        config = check_config(path)
        preflight(config)
        print(f"{path}: ok (runs/{config['name']}, {len(denoisers(config))} denoisers)")
    return 0


COMMAND = Command(run, arguments=_arguments)
