"""Does the λ grid span what the papers need: from "no effect" to "max ‖∂Q‖² ≤ 1 on the test set"?

From the tables of ``lipbench lipschitz`` (operator J, every measured point), per λ: the maximum
over the images of ‖∂Q‖², its reduction relative to λ = 0, and a label:

* ``no effect``: reduced by less than ``no_effect_rtol`` (default 5 %), or not reduced at all: the
  max over the images of an unconstrained network moves by tens of percent with training length
  alone, so an increase is not an effect of the penalty;
* ``target met``: max ‖∂Q‖² at most ``target`` (default 1: firm nonexpansiveness);
* ``partial`` otherwise.

The grid is calibrated when its smallest λ > 0 has no effect and its largest reaches the target
at every point. :func:`assess` says which end is missing and what to change; when max ‖∂Q‖²
stops falling between the two largest λ while still above the target, a larger λ does not help
(the penalty bounds ‖∂Q(x̃)‖² on the training batch, as well as its power iteration estimates
it; the max over the test images stays above), and the verdict says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lipbench.errors import LipbenchError
from lipbench.outputs import write_formatted

NO_EFFECT_RTOL = 0.05
TARGET = 1.0


@dataclass(frozen=True)
class GridVerdict:
    """What :func:`assess` found; ``calibrated`` iff both ends of the grid are covered."""

    low_end: bool  # the smallest λ > 0 has no effect at any point
    high_end: bool  # the largest λ reaches the target
    saturated: bool  # max ‖∂Q‖² stopped falling above the target
    crossing: float | None  # log-interpolated λ where max ‖∂Q‖² meets the target
    suggestions: list[str] = field(default_factory=list)

    @property
    def calibrated(self) -> bool:
        return self.low_end and self.high_end

    def message(self) -> str:
        head = "the λ grid is calibrated" if self.calibrated else "the λ grid is NOT calibrated"
        if self.crossing is not None:
            head += f"; max ‖∂Q‖² reaches the target near λ ≈ {self.crossing:.3g}"
        return "; ".join([head, *self.suggestions])


def grid_table(lip: pd.DataFrame, no_effect_rtol: float = NO_EFFECT_RTOL, target: float = TARGET) -> pd.DataFrame:
    """λ × point → max ‖∂Q‖² of J over the images, reduction vs λ = 0 and its label."""
    lip = lip[lip.operator == "J"]
    if not (lip.lam == 0).any() or not (lip.lam > 0).any():
        raise LipbenchError("the λ grid needs λ = 0 and at least one λ > 0: give the Lipschitz table of each")
    table = lip.groupby(["lam", "point"]).lip2_Q.max().rename("lip2_Q_max").reset_index()
    base = table[table.lam == 0].set_index("point").lip2_Q_max
    table["reduction"] = 1 - table.lip2_Q_max / table.point.map(base)
    table["effect"] = "partial"
    table.loc[table.reduction < no_effect_rtol, "effect"] = "no effect"
    table.loc[table.lip2_Q_max <= target, "effect"] = "target met"
    return table.sort_values(["point", "lam"], ignore_index=True)


def _crossing(worst: pd.Series, target: float) -> float | None:
    """λ > 0 where the worst max ‖∂Q‖² (``worst``, indexed by λ > 0) first meets ``target``,
    interpolated linearly in log λ."""
    below = worst[worst <= target]
    if below.empty:
        return None
    hi = below.index[0]
    above = worst[worst.index < hi]
    if above.empty:
        return hi
    lo = above.index[-1]
    v_lo, v_hi = worst[lo], worst[hi]
    t = (v_lo - target) / (v_lo - v_hi)
    return math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))


def assess(table: pd.DataFrame, no_effect_rtol: float = NO_EFFECT_RTOL, target: float = TARGET) -> GridVerdict:
    """The verdict on a :func:`grid_table`: which ends are covered, and what to change."""
    worst = table.groupby("lam").lip2_Q_max.max()  # the worst point per λ
    positive = worst[worst.index > 0]
    low = table[table.lam == positive.index[0]]
    low_end = bool((low.reduction < no_effect_rtol).all())
    high_end = bool(positive.iloc[-1] <= target)
    saturated = not high_end and len(positive) >= 2 and abs(1 - positive.iloc[-1] / positive.iloc[-2]) < no_effect_rtol
    suggestions = []
    if not low_end:
        suggestions.append(
            f"the smallest λ = {positive.index[0]:g} already reduces max ‖∂Q‖² by "
            f"{low.reduction.max():.0%}: add λ = {positive.index[0] / 100:g}"
        )
    if saturated:
        suggestions.append(
            f"max ‖∂Q‖² stays at {positive.iloc[-1]:.3g} for λ = {positive.index[-2]:g} and {positive.index[-1]:g}:"
            " a larger λ will not help; more power iterations in the penalty (train.power_iters) and a"
            " longer, gentler fine-tune (train.finetune_steps, train.finetune_lr) bring it closer"
        )
    elif not high_end:
        suggestions.append(
            f"the largest λ = {positive.index[-1]:g} leaves max ‖∂Q‖² at {positive.iloc[-1]:.3g} > {target:g}:"
            f" add λ = {positive.index[-1] * 10:g}"
        )
    return GridVerdict(low_end, high_end, saturated, _crossing(positive, target), suggestions)


def write_grid(table: pd.DataFrame, verdict: GridVerdict, out: Path) -> None:
    """``grid.csv``, ``grid.md`` (table and verdict) and ``grid.tex`` (verdict in the caption) under ``out``."""
    caption = "Calibration of the λ grid: max ‖∂Q‖² of J over the test images, its reduction from λ = 0."
    write_formatted(table, out / "grid", f"{caption} {verdict.message()}.", note=verdict.message() + ".")
