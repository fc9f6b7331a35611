"""Wall time of a workflow run that took one or more Snakemake invocations (interrupted and resumed).

    python benchmarks/run_wall.py RUN LOG [LOG ...] --out JSON

Each ``LOG`` is one invocation's ``.snakemake/log/*.snakemake.log``; its wall is the time from its first
job's start to its last job's end (the stamps Snakemake prints before every job). ``RUN``'s
``benchmarks/**/*.tsv`` (Snakemake's ``benchmark:`` files) give each finished job's own wall and CPU
time. The run's wall is the sum over invocations, since none ran at the same time as another.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lipbench.plumbing.io import atomic_write

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", re.M)
COMMAND = re.compile(r"^\s*Command: (.*)$", re.M)


def invocation(text: str) -> dict:
    """Start, end, wall (s), command and the number of finished jobs of one Snakemake log's text."""
    stamps = [datetime.strptime(" ".join(s.split()), "%a %b %d %H:%M:%S %Y") for s in STAMP.findall(text)]
    if not stamps:
        raise ValueError("no job ran in this log (no [date] stamp)")
    command = COMMAND.search(text)
    return {
        "start": stamps[0].isoformat(),
        "end": stamps[-1].isoformat(),
        "wall_s": (stamps[-1] - stamps[0]).total_seconds(),
        "finished_jobs": len(re.findall(r"^Finished jobid", text, re.M)),
        "command": command.group(1).strip() if command else "",
    }


def job_times(run: Path) -> pd.DataFrame:
    """One row per benchmark file under ``run/benchmarks``: ``job`` (its path), ``wall_s``, ``cpu_s``."""
    rows = []
    for path in sorted((run / "benchmarks").rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        rows.append({"job": path.relative_to(run / "benchmarks").with_suffix("").as_posix(),
                     "wall_s": float(table["s"].iloc[-1]), "cpu_s": float(table["cpu_time"].iloc[-1])})  # fmt: skip
    return pd.DataFrame(rows, columns=["job", "wall_s", "cpu_s"])


def run_wall(run: Path, logs: list[Path]) -> dict:
    parts = [{"log": log.name, **invocation(log.read_text())} for log in logs]
    jobs = job_times(run)
    return {
        "run": run.name,
        "wall_s": sum(p["wall_s"] for p in parts),
        "invocations": parts,
        "jobs": len(jobs),
        "job_wall_s": float(jobs.wall_s.sum()),
        "job_cpu_s": float(jobs.cpu_s.sum()),
        "per_job": jobs.to_dict(orient="records"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the run's folder (runs/<name>)")
    parser.add_argument("logs", type=Path, nargs="+", help="each invocation's Snakemake log, in order")
    parser.add_argument("--out", type=Path, required=True, help="the JSON to write")
    args = parser.parse_args(argv)
    summary = run_wall(args.run, args.logs)
    with atomic_write(args.out, "w") as fh:
        fh.write(json.dumps(summary, indent=1) + "\n")
    print(f"{args.run}: {summary['wall_s'] / 3600:.2f} h over {len(args.logs)} invocation(s), {summary['jobs']} jobs")


if __name__ == "__main__":
    main()
