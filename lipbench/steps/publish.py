"""``lipbench publish``: copy a finished run's tables, figures and benchmark timings (and, if asked,
its trained models) from ``runs/<name>/`` to ``results/<name>/``, the published reference that the
next run of the configuration is compared with. The old reference is replaced as a whole: the new
one is assembled beside it and renamed into place."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from lipbench.plumbing.command import Command
from lipbench.plumbing.errors import LipbenchError

PUBLISHED = ("tables", "figures", "benchmarks")


def publish(run: Path, dest: Path, *, models: bool = False) -> list[str]:
    """Replace ``dest`` by ``run``'s :data:`PUBLISHED` folders (and ``models/*/model.pt`` if
    ``models``); return the relative paths copied."""
    if not (run / "tables" / "results.csv").is_file():
        raise LipbenchError(f"{run} holds no tables/results.csv: finish the run first (snakemake --cores all ...)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for folder in PUBLISHED:
            if (run / folder).is_dir():
                shutil.copytree(run / folder, staging / folder)
        if models:
            for model in sorted((run / "models").glob("*/model.pt")):
                target = staging / model.relative_to(run)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(model, target)
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)  # left by a publish killed between the two renames
        if dest.exists():
            dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a finished run's folder (runs/<name>)")
    p.add_argument("dest", nargs="?", help="the published folder (default: results/<name>)")
    p.add_argument("--models", action="store_true", help="the trained models too (models/*/model.pt)")


def run(args: argparse.Namespace) -> int:
    source = Path(args.run)
    dest = Path(args.dest) if args.dest else Path("results") / source.name
    files = publish(source, dest, models=args.models)
    print(f"published {len(files)} files of {source} to {dest}")
    return 0


COMMAND = Command(run, arguments=_arguments)
