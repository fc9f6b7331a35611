"""``lipbench grid``: does the λ grid span what the papers need, from "no effect" to "max ‖∂Q‖² ≤ 1 on the test set"?

From the tables of ``lipbench lipschitz`` (operator J, every measured point), per λ, point and
scope: the maximum over the images of ‖∂Q‖², its reduction relative to λ = 0, and a label. Two
scopes, labelled in every table:

* ``crops``: J at the test images themselves (element ``r0``), the first paper's test protocol;
  the verdict is decided here;
* ``D4``: J at every rotation/flip of the test images, a stricter maximum that the verdict reports
  beside it (a denoiser trained on rotated and flipped patches should hold there too).

Labels:

* ``no effect``: reduced by less than ``no_effect_rtol`` (default 5 %), or not reduced at all: the
  max over the images of an unconstrained network moves by tens of percent with training length
  alone, so an increase is not an effect of the penalty;
* ``target met``: max ‖∂Q‖² at most ``target`` (default 1: firm nonexpansiveness);
* ``partial`` otherwise.

The verdict reads the papers' test points only (``noisy``, ``tilde``, ``pnp``). Every row also
carries ``worst_found``: the largest ‖∂Q‖² of J at any point of any kind for that λ (the points
where PnP goes and the adversarial search included), a lower bound on the global constant.

The grid is calibrated when its smallest λ > 0 has no effect and its largest reaches the target
at every point. :func:`assess` says which end is missing and what to change; when max ‖∂Q‖²
stops falling between the two largest λ while still above the target, a larger λ does not help
(the penalty bounds ‖∂Q(x̃)‖² on the training batch, as well as its power iteration estimates
it; the max over the test images stays above), and the verdict says so.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lipbench.plumbing.command import Command
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import read_tables, staged_folder, write_formatted
from lipbench.plumbing.options import check, from_args, option

NO_EFFECT_RTOL = 0.05
TARGET = 1.0
PAPER_POINTS = ("noisy", "tilde", "pnp")  # lipbench lipschitz's papers' points (a test keeps them equal)


@dataclass(frozen=True)
class GridSettings:
    """The calibration check's two ends (``lipbench grid``'s options, config ``calibration``)."""

    no_effect: float = option(
        NO_EFFECT_RTOL, above=0, maximum=1, help="a smaller relative reduction of max ‖∂Q‖² from λ = 0 is no effect"
    )
    target: float = option(TARGET, above=0, help="max ‖∂Q‖² the largest λ must reach")

    def __post_init__(self) -> None:
        check(self, "grid settings")


SCOPES = {"crops": "the test images as they are (paper 1's protocol)", "D4": "every rotation/flip of them (stricter)"}


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
    """λ × point × scope → max ‖∂Q‖² of J over the images, reduction vs λ = 0, its label, and the
    worst found at any point for that λ."""
    lip = lip[lip.operator == "J"]
    worst_found = lip.groupby("lam").lip2_Q.max()
    lip = lip[lip.point.isin(PAPER_POINTS)]
    if not (lip.lam == 0).any() or not (lip.lam > 0).any():
        raise LipbenchError("the λ grid needs λ = 0 and at least one λ > 0: give the Lipschitz table of each")
    crops = lip[lip.element == "r0"]
    if crops.empty:
        raise LipbenchError("the Lipschitz tables have no row of J at the untransformed images (element r0)")
    parts = [part.groupby(["lam", "point"]).lip2_Q.max() for part in (crops, lip)]
    table = pd.concat(parts, keys=list(SCOPES), names=["scope"]).rename("lip2_Q_max").reset_index()
    base = table[table.lam == 0].set_index(["scope", "point"]).lip2_Q_max
    table["reduction"] = 1 - table.lip2_Q_max / base.reindex(pd.MultiIndex.from_frame(table[["scope", "point"]])).values
    table["effect"] = "partial"
    table.loc[table.reduction < no_effect_rtol, "effect"] = "no effect"
    table.loc[table.lip2_Q_max <= target, "effect"] = "target met"
    table["worst_found"] = table.lam.map(worst_found)
    columns = ["scope", "lam", "point", "lip2_Q_max", "reduction", "effect", "worst_found"]
    return table[columns].sort_values(["scope", "point", "lam"], ignore_index=True)


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


def assess(
    table: pd.DataFrame, no_effect_rtol: float = NO_EFFECT_RTOL, target: float = TARGET, scope: str = "crops"
) -> GridVerdict:
    """The verdict on a :func:`grid_table` in one ``scope``: which ends are covered, what to change."""
    table = table[table.scope == scope]
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


def stricter_note(table: pd.DataFrame, target: float = TARGET) -> str:
    """What the D4 scope says at the largest λ, beside the verdict on the crops."""
    d4 = table[table.scope == "D4"]
    top = d4[d4.lam == d4.lam.max()].lip2_Q_max.max()
    met = "meets" if top <= target else "does not meet"
    return f"max ‖∂Q‖² at the largest λ = {d4.lam.max():g} is {top:.4g}: it {met} the target {target:g}"


def summary(table: pd.DataFrame, verdict: GridVerdict, target: float = TARGET) -> str:
    """The verdict (on the crops), labelled, then the stricter D4 note."""
    return (
        f"Scope crops, {SCOPES['crops']}: {verdict.message()}. "
        f"Scope D4, {SCOPES['D4']}: {stricter_note(table, target)}."
    )


def write_grid(table: pd.DataFrame, verdict: GridVerdict, out: Path, target: float = TARGET) -> None:
    """``grid.csv``, ``grid.md`` (table and verdict) and ``grid.tex`` (verdict in the caption) under ``out``."""
    caption = (
        "Calibration of the λ grid: max ‖∂Q‖² of J over the test images (scope crops) and over every"
        " rotation/flip of them (scope D4), its reduction from λ = 0; worst_found: the largest at any point"
        " evaluated (where PnP goes, the adversarial search), a lower bound on the global max."
    )
    text = summary(table, verdict, target)
    write_formatted(table, out / "grid", f"{caption} {text}", note=text)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lipschitz", nargs="+", required=True, help="tables of `lipbench lipschitz`, λ = 0 included")
    p.add_argument("--strict", action="store_true", help="exit 1 when the grid does not span both ends")


def run(args: argparse.Namespace) -> int:
    settings = from_args(GridSettings, args)
    lip = read_tables(args.lipschitz, ["lam", "point", "operator", "element", "lip2_Q"])
    table = grid_table(lip, settings.no_effect, settings.target)
    verdict = assess(table, settings.no_effect, settings.target)
    with staged_folder(args.out) as staging:  # all or nothing
        write_grid(table, verdict, staging, settings.target)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(summary(table, verdict, settings.target))
    return 1 if args.strict and not verdict.calibrated else 0


COMMAND = Command(run, settings=(GridSettings,), out="folder for grid.csv, grid.md, grid.tex", arguments=_arguments)
