"""Metric regression: compare two long-format results tables (``lipbench aggregate``'s
``results.csv``) value by value, with a tolerance per metric."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lipbench.plumbing.command import Command
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import read_table

KEYS = ["step", "denoiser", "lam", "method", "image", "kernel", "point", "operator", "element", "metric"]


@dataclass(frozen=True)
class Tolerance:
    value: float
    relative: bool = False

    def exceeded(self, base: pd.Series, new: pd.Series) -> pd.Series:
        diff = (new - base).abs()
        limit = self.value * base.abs() if self.relative else self.value
        return ~(diff <= limit) & ~(base.isna() & new.isna())


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "psnr": Tolerance(0.1),  # dB
    "psnr_best": Tolerance(0.1),
    "psnr_input": Tolerance(1e-6),  # the observations are seeded: they must not move
    "ssim": Tolerance(0.005),
    "c_final": Tolerance(0.1, relative=True),
    "increases": Tolerance(2),
    "lip_J": Tolerance(0.01, relative=True),
    "lip2_Q": Tolerance(0.02, relative=True),
    "tv_weight": Tolerance(1e-6, relative=True),  # chosen from a grid: any move is a different choice
}


def parse_tolerances(pairs: list[str]) -> dict[str, Tolerance]:
    """``metric=0.1`` (absolute) or ``metric=1%`` (relative) overrides."""
    out = dict(DEFAULT_TOLERANCES)
    for pair in pairs:
        metric, sep, value = pair.partition("=")
        try:
            out[metric] = Tolerance(float(value.rstrip("%")) / (100 if value.endswith("%") else 1), value.endswith("%"))
        except ValueError:
            sep = ""
        if not sep or not metric:
            raise LipbenchError(
                f"--tolerance {pair!r} is not METRIC=VALUE or METRIC=PERCENT% (e.g. psnr=0.1, lip_J=1%)"
            )
    return out


def compare(baseline: pd.DataFrame, new: pd.DataFrame, tolerances: dict[str, Tolerance]) -> pd.DataFrame:
    """One row per baseline value that moved beyond its tolerance or is missing from ``new``."""
    keys = [k for k in KEYS if k in baseline.columns]
    for name, table in (("baseline", baseline), ("new", new)):
        missing = sorted(set([*keys, "value"]) - set(table.columns))
        if missing:
            raise LipbenchError(
                f"the {name} table lacks columns {missing}: give results.csv files of `lipbench aggregate`"
            )
    b = baseline[[*keys, "value"]].astype({k: str for k in keys})
    n = new[[*keys, "value"]].astype({k: str for k in keys})
    merged = b.merge(n, on=keys, how="left", suffixes=("_baseline", "_new"), indicator=True)
    bad = pd.Series(False, index=merged.index)
    for metric, tol in tolerances.items():
        rows = merged.metric == metric
        bad[rows] = tol.exceeded(merged.loc[rows, "value_baseline"], merged.loc[rows, "value_new"])
    missing = merged["_merge"] == "left_only"
    report = merged[bad | missing].drop(columns="_merge").copy()
    report["change"] = report.value_new - report.value_baseline
    report["status"] = np.where(missing[bad | missing], "missing", "beyond tolerance")
    return report.reset_index(drop=True)


def compare_files(baseline: str, new: str, tolerances: dict[str, Tolerance]) -> tuple[pd.DataFrame, int]:
    """``(report, number of values compared)``."""
    base = read_table(baseline)
    return compare(base, read_table(new), tolerances), len(base)


def verdict(report: pd.DataFrame, compared: int, baseline: str, new: str) -> str:
    """One paragraph: do ``new``'s values reproduce ``baseline``'s within tolerance?"""
    if report.empty:
        return f"{new} reproduces {baseline}: all {compared} values within tolerance."
    worst = report.assign(size=report.change.abs()).sort_values("size", ascending=False)
    moved = ", ".join(f"{m} ({n})" for m, n in worst.metric.value_counts().items())
    return (
        f"{new} does NOT reproduce {baseline}: {len(report)} of {compared} values beyond tolerance or missing "
        f"(by metric: {moved}). The differences are listed below; docs/workflow.md says which differences "
        "thread counts and platforms make."
    )


def write_report(report: pd.DataFrame, compared: int, baseline: str, new: str, path: str, tolerances: dict) -> None:
    """``path`` (Markdown): the verdict, the tolerances used and the values beyond them."""
    from lipbench.plumbing.io import atomic_write

    rows = [f"| {m} | {t.value:g}{' (relative)' if t.relative else ''} |" for m, t in tolerances.items()]
    with atomic_write(path, "w") as fh:
        fh.write(verdict(report, compared, baseline, new) + "\n\n")
        fh.write("| metric | tolerance |\n|---|---|\n" + "\n".join(rows) + "\n")
        if not report.empty:
            fh.write("\n" + report.to_markdown(index=False, floatfmt=".4g") + "\n")


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", help="reference results.csv (e.g. tests/golden/ci/results.csv)")
    p.add_argument("new", help="results.csv to check")
    p.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="override a tolerance: psnr=0.2 (absolute) or lip_J=2%% (relative)",
    )
    p.add_argument("--report", metavar="PATH", help="also write the verdict and the differences (Markdown)")
    p.add_argument("--no-fail", action="store_true", help="exit 0 whatever the differences (a report)")


def run(args: argparse.Namespace) -> int:
    tolerances = parse_tolerances(args.tolerance)
    report, compared = compare_files(args.baseline, args.new, tolerances)
    if args.report:
        write_report(report, compared, args.baseline, args.new, args.report, tolerances)
    if report.empty:
        print(f"no regression: {compared} values within tolerance")
        return 0
    print(report.to_string(index=False, max_rows=60))
    print(f"{len(report)} of {compared} values regressed (beyond tolerance or missing)", file=sys.stderr)
    return 0 if args.no_fail else 1


COMMAND = Command(run, arguments=_arguments)
