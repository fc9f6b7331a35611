"""``lipbench summary``: the headline table of a run (:mod:`lipbench.steps.headline`), or with
``--claims`` the papers' claims checked on its tables (:mod:`lipbench.steps.claims`). The README's
table is this command's output for the published quick run (a test keeps them equal)."""

from __future__ import annotations

import argparse

from lipbench.plumbing.command import Command
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import atomic_write
from lipbench.steps.headline import summary_markdown


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", help="a results.csv of `lipbench aggregate` (e.g. results/quick/tables/results.csv)")
    p.add_argument("--out", help="write the Markdown table here too")
    p.add_argument(
        "--claims", action="store_true",
        help="instead, the papers' claims C1-C5 checked on the run's tables (lipbench.steps.claims)",
    )  # fmt: skip
    p.add_argument("--strict", action="store_true", help="with --claims: exit 1 unless every claim is met")


def run(args: argparse.Namespace) -> int:
    if args.strict and not args.claims:
        raise LipbenchError("--strict judges the claims: give it with --claims")
    if args.claims:
        from lipbench.steps.claims import MET, claims, claims_markdown

        found = claims(args.results)
        text = claims_markdown(found)
        failed = args.strict and any(c.verdict != MET for c in found)
    else:
        text, failed = summary_markdown(args.results), False
    if args.out:
        with atomic_write(args.out, "w") as fh:
            fh.write(text)
    print(text, end="")
    return 1 if failed else 0


COMMAND = Command(run, arguments=_arguments)
