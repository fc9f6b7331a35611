"""Metric regression: compare two long-format results tables (``lipbench aggregate``'s
``results.csv``) value by value, with a tolerance per metric."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lipbench.errors import LipbenchError
from lipbench.outputs import read_table

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
