"""Metric regression: compare two long-format results tables (``lipbench aggregate``'s
``results.csv``) value by value, with a tolerance per metric.

Every metric of the baseline is judged, or the comparison is refused (exit 2) naming the metrics it
has no tolerance for; a value missing from the new table, or NaN where the baseline has a number, is
a regression. Rows only the new table has, and a changed ``config_hash`` (the results of another
configuration), are reported: a warning, an error with ``--strict``."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lipbench.plumbing.command import Command
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import read_table

KEYS = ["step", "denoiser", "lam", "method", "image", "kernel", "point", "start", "operator", "element", "metric"]


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
    "denoise_psnr": Tolerance(0.1),  # dB
    "psnr_peak": Tolerance(0.1),  # dB, the long runs' mean PSNR curve (stability table)
    "psnr_final": Tolerance(0.1),
    "psnr_loss": Tolerance(0.1),
}


def parse_tolerances(pairs: list[str], metrics: set[str] | frozenset[str] = frozenset()) -> dict[str, Tolerance]:
    """``metric=0.1`` (absolute) or ``metric=1%`` (relative) overrides of :data:`DEFAULT_TOLERANCES`,
    each a finite number >= 0, for a metric of those or of ``metrics`` (the baseline's)."""
    out = dict(DEFAULT_TOLERANCES)
    for pair in pairs:
        metric, sep, value = pair.partition("=")
        try:
            number = float(value.rstrip("%"))
        except ValueError:
            sep = ""
        if not sep or not metric:
            raise LipbenchError(
                f"--tolerance {pair!r} is not METRIC=VALUE or METRIC=PERCENT% (e.g. psnr=0.1, lip_J=1%)"
            )
        if not (math.isfinite(number) and number >= 0):
            raise LipbenchError(f"--tolerance {pair!r}: a tolerance must be a finite number >= 0")
        if metric not in DEFAULT_TOLERANCES and metric not in metrics:
            known = ", ".join(sorted({*DEFAULT_TOLERANCES, *metrics}))
            raise LipbenchError(f"--tolerance {pair!r}: no metric {metric!r} to compare (the metrics: {known})")
        out[metric] = Tolerance(number / (100 if value.endswith("%") else 1), value.endswith("%"))
    return out


def unjudged(baseline: pd.DataFrame, tolerances: dict[str, Tolerance]) -> list[str]:
    """The baseline's metrics without a tolerance (a comparison would pass them unseen)."""
    return sorted(set(baseline.metric.astype(str)) - set(tolerances))


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
    cannot = unjudged(baseline, tolerances)
    if cannot:
        raise LipbenchError(
            f"no tolerance for the metric(s) {', '.join(cannot)} of the baseline: give one each "
            f"(--tolerance {cannot[0]}=VALUE), or the comparison would pass them unchecked"
        )
    merged = b.merge(n, on=keys, how="left", suffixes=("_baseline", "_new"), indicator=True)
    only_new = n.merge(b[keys], on=keys, how="left", indicator=True).query("_merge == 'left_only'")
    only_new = only_new.rename(columns={"value": "value_new"}).assign(_merge="right_only", value_baseline=np.nan)
    merged = pd.concat([merged.astype({"_merge": str}), only_new], ignore_index=True)  # baseline's order, then new rows
    bad = pd.Series(False, index=merged.index)
    for metric, tol in tolerances.items():
        rows = (merged.metric == metric) & (merged["_merge"] == "both")
        bad[rows] = tol.exceeded(merged.loc[rows, "value_baseline"], merged.loc[rows, "value_new"])
    missing = merged["_merge"] == "left_only"
    extra = merged["_merge"] == "right_only"
    shown = bad | missing | extra
    report = merged[shown].drop(columns="_merge").copy()
    report["change"] = report.value_new - report.value_baseline
    report["status"] = np.select(
        [missing[shown], extra[shown]], ["missing", "extra"], default="beyond tolerance"
    )  # fmt: skip
    order = report.status.map({"beyond tolerance": 0, "missing": 1, "extra": 2})  # what moved first
    return report.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_files` found: the differing values (``report``), the number of baseline
    values compared, and the configuration hashes of both tables."""

    report: pd.DataFrame
    compared: int
    baseline_hashes: tuple[str, ...]
    new_hashes: tuple[str, ...]

    @property
    def regressions(self) -> pd.DataFrame:
        return self.report[self.report.status != "extra"]

    @property
    def extra(self) -> int:
        return int((self.report.status == "extra").sum())

    @property
    def config_changed(self) -> bool:
        return self.baseline_hashes != self.new_hashes

    def warnings(self) -> list[str]:
        """Not regressions, but a reproduction should not have them: ``--strict`` makes them errors."""
        said = []
        if self.config_changed:
            said.append(
                f"the configuration changed: config_hash {', '.join(self.baseline_hashes) or 'none'} in the "
                f"baseline, {', '.join(self.new_hashes) or 'none'} in the new table"
            )
        if self.extra:
            said.append(f"{self.extra} rows of the new table are not in the baseline (listed as extra)")
        return said


def _hashes(table: pd.DataFrame) -> tuple[str, ...]:
    return tuple(sorted(table.config_hash.dropna().astype(str).unique())) if "config_hash" in table else ()


def compare_files(baseline: str, new: str, pairs: list[str] = ()) -> tuple[Comparison, dict[str, Tolerance]]:
    """The comparison of two results files with the ``METRIC=VALUE`` tolerance overrides ``pairs``."""
    base, other = read_table(baseline), read_table(new)
    metrics = set(base.metric.astype(str)) if "metric" in base else set()
    tolerances = parse_tolerances(list(pairs), metrics)
    report = compare(base, other, tolerances)
    return Comparison(report, len(base), _hashes(base), _hashes(other)), tolerances


def verdict(comparison: Comparison, baseline: str, new: str) -> str:
    """One paragraph: do ``new``'s values reproduce ``baseline``'s within tolerance?"""
    report, compared = comparison.regressions, comparison.compared
    notes = "".join(f" Warning: {w}." for w in comparison.warnings())
    if report.empty:
        return f"{new} reproduces {baseline}: all {compared} values within tolerance.{notes}"
    worst = report.assign(size=report.change.abs()).sort_values("size", ascending=False)
    moved = ", ".join(f"{m} ({n})" for m, n in worst.metric.value_counts().items())
    return (
        f"{new} does NOT reproduce {baseline}: {len(report)} of {compared} values beyond tolerance or missing "
        f"(by metric: {moved}). The differences are listed below; docs/workflow.md says which differences "
        f"thread counts and platforms make.{notes}"
    )


def write_report(comparison: Comparison, baseline: str, new: str, path: str, tolerances: dict) -> None:
    """``path`` (Markdown): the verdict, the tolerances used and the values beyond them."""
    from lipbench.plumbing.io import atomic_write

    report = comparison.report
    rows = [f"| {m} | {t.value:g}{' (relative)' if t.relative else ''} |" for m, t in tolerances.items()]
    with atomic_write(path, "w") as fh:
        fh.write(verdict(comparison, baseline, new) + "\n\n")
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
    p.add_argument(
        "--strict", action="store_true", help="a changed config_hash or rows only the new table has fail it too"
    )
    p.add_argument("--no-fail", action="store_true", help="exit 0 whatever the differences (a report)")


def run(args: argparse.Namespace) -> int:
    comparison, tolerances = compare_files(args.baseline, args.new, args.tolerance)
    if args.report:
        write_report(comparison, args.baseline, args.new, args.report, tolerances)
    report, compared = comparison.regressions, comparison.compared
    if not comparison.report.empty:
        print(comparison.report.to_string(index=False, max_rows=60))
    for warning in comparison.warnings():
        print(f"lipbench compare: {'error' if args.strict else 'warning'}: {warning}", file=sys.stderr)
    if report.empty:
        print(f"no regression: {compared} values within tolerance")
    else:
        print(f"{len(report)} of {compared} values regressed (beyond tolerance or missing)", file=sys.stderr)
    failed = not report.empty or (args.strict and bool(comparison.warnings()))
    return 1 if failed and not args.no_fail else 0


COMMAND = Command(run, arguments=_arguments)
