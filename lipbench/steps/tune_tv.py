"""``lipbench tune-tv``, the TV baseline: PGD with the prox of isotropic TV, its weight chosen on tuning images.

PGD for ``min_x ½‖A x − y‖² + λ TV(x)`` is PnP-PGD with ``J = prox_{γλ TV}``, so the baseline
runs through the same :func:`lipbench.steps.pnp.run_pnp` as every learned denoiser. Its one
parameter, the prox weight ``w = γλ``, is chosen by grid search on images that are not the test
set (by default the first images of BSD400), on the test protocol's kernels, noise and iterations:
the weight with the best mean final PSNR over tuning images × kernels, then a finer log grid
between its neighbours. The result is a checkpoint (``TVDenoiser`` with that weight) that every
later step (PnP, Lipschitz, denoising) reads like a trained model.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import lipbench
from lipbench.data import DATASETS
from lipbench.models import TVDenoiser, save_checkpoint
from lipbench.plumbing.command import Command
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import remove_outputs, staged_folder, write_table
from lipbench.plumbing.options import check, default_of, from_args, option
from lipbench.steps.pnp import PROTOCOLS, PnPSettings, run_pnp
from lipbench.steps.train import TrainConfig

LABEL = "tv"


@dataclass(frozen=True)
class TuningSettings:
    """How TV's weight is chosen (``lipbench tune-tv``'s own options; the protocol's are
    :class:`~lipbench.steps.pnp.PnPSettings`')."""

    weights: tuple[float, ...] = option(
        metavar="W", above=0, help="prox weights w = γλ tried (a log grid; the best must lie inside it)"
    )
    images: int = option(4, minimum=1, help="tune on the dataset's first N images")
    test_dataset: str = option("bsd10", help="refuse tuning images that belong to it", choices=tuple(DATASETS))
    refine: int = option(4, minimum=0, help="weights tried between the best one's neighbours")
    prox_iters: int = option(100, minimum=1, help="FGP iterations per TV prox")
    train_sigma: float = option(
        default_of(TrainConfig, "sigma"),
        above=0,
        help="noise of its Lipschitz and denoising evaluations (the training noise)",
    )

    def __post_init__(self) -> None:
        check(self, "TV tuning settings")


def _scores(settings: PnPSettings, weights: Sequence[float], prox_iters: int, stage: str, **run: Any) -> pd.DataFrame:
    rows = []
    for w in weights:
        final = run_pnp(settings, model=TVDenoiser(weight=w, iters=prox_iters), **run)["final"]
        rows.append({"stage": stage, "prox_weight": w, "psnr": final.psnr.mean(), "psnr_std": final.psnr.std()})
    return pd.DataFrame(rows)


def tune_tv(
    settings: PnPSettings,
    weights: Sequence[float],
    *,
    prox_iters: int = default_of(TuningSettings, "prox_iters"),
    refine: int = default_of(TuningSettings, "refine"),
    root: str | None = None,
    device: str = "auto",
) -> pd.DataFrame:
    """The mean final PSNR (over ``settings``' images × kernels) of TV-PGD at every prox weight of
    ``weights`` (stage ``grid``), then at ``refine`` weights log-spaced strictly between the best
    one's neighbours (stage ``refine``); column ``chosen`` marks the best of all. Raises
    :class:`LipbenchError` when the best grid weight lies on the grid's edge (widen the grid)."""
    grid = sorted(set(float(w) for w in weights))
    if len(grid) < 3 or grid[0] <= 0:
        raise LipbenchError(f"TV weights must be >= 3 distinct values > 0 (a log grid), got {list(weights)}")
    run = {"root": root, "device": device}
    table = _scores(settings, grid, prox_iters, "grid", **run)
    best = int(table.psnr.idxmax())
    if best in (0, len(grid) - 1):
        side = "smallest" if best == 0 else "largest"
        raise LipbenchError(
            f"the best TV weight on the tuning images is the {side} of the grid ({grid[best]:g}, "
            f"{table.psnr[best]:.2f} dB): extend tv.weights beyond it so the optimum lies inside"
        )
    if refine > 0:
        inner = np.geomspace(grid[best - 1], grid[best + 1], refine + 2)[1:-1]
        table = pd.concat([table, _scores(settings, inner.tolist(), prox_iters, "refine", **run)], ignore_index=True)
    table["chosen"] = False
    table.loc[table.psnr.idxmax(), "chosen"] = True
    return table.sort_values("prox_weight", ignore_index=True)


def chosen_weight(table: pd.DataFrame) -> float:
    return float(table.loc[table.chosen, "prox_weight"].iloc[0])


def write_tv(
    table: pd.DataFrame, settings: PnPSettings, out: str | os.PathLike[str], *, prox_iters: int, train_sigma: float
) -> Path:
    """``out/model.pt`` (the tuned ``TVDenoiser``; ``train_sigma``: the noise level its Lipschitz
    and denoising evaluations use, the learned denoisers' training noise) and ``out/tuning.csv``."""
    out = Path(out)
    weight = chosen_weight(table)
    tuning = {
        "dataset": settings.dataset, "images": settings.max_images, "kernels": list(settings.kernels),
        "iters": settings.iters, "gamma": settings.gamma, "gamma_unit": settings.gamma_unit,
    }  # fmt: skip
    write_table(table.assign(**{f"tuning_{k}": str(v) for k, v in tuning.items()}), out / "tuning.csv")
    payload = {
        "model": {},
        "model_config": {"name": LABEL, "weight": weight, "iters": prox_iters},
        "label": LABEL,
        "train_config": {"sigma": train_sigma, "lam": math.nan, "tv_tuning": tuning},
        "lipbench_version": lipbench.__version__,
    }
    save_checkpoint(payload, out / "model.pt")
    return out / "model.pt"


def tuning_settings(settings: PnPSettings, images: int) -> PnPSettings:
    """The test protocol on the tuning set: plain PGD (no equivariance), the first ``images``."""
    return dataclasses.replace(settings, equivariance="none", max_images=images, checkpoint="")


def run(args: argparse.Namespace) -> int:
    from lipbench.data import image_ids

    tuning = from_args(TuningSettings, args)
    remove_outputs(args.out, ("model.pt", "tuning.csv"))
    settings = tuning_settings(from_args(PnPSettings, args, checkpoint=""), tuning.images)
    shared = set(image_ids(args.dataset, args.root)[: tuning.images]) & set(image_ids(tuning.test_dataset, args.root))
    if shared:
        raise LipbenchError(
            f"tuning images {sorted(shared)} of {args.dataset} are in the test set {tuning.test_dataset}: "
            "tune TV on other images (e.g. --dataset bsd400)"
        )
    table = tune_tv(settings, tuning.weights, prox_iters=tuning.prox_iters, refine=tuning.refine, root=args.root,
                    device=args.device)  # fmt: skip
    with staged_folder(args.out) as staging:  # all or nothing
        write_tv(table, settings, staging, prox_iters=tuning.prox_iters, train_sigma=tuning.train_sigma)
    path = Path(args.out) / "model.pt"
    print(table[["stage", "prox_weight", "psnr", "chosen"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"TV prox weight {chosen_weight(table):.4g} chosen on {tuning.images} {args.dataset} images; wrote {path}")
    return 0


COMMAND = Command(
    run,
    settings=(PnPSettings, TuningSettings),
    skip=("checkpoint", "equivariance", "lipschitz_every", "max_images"),
    defaults={"dataset": "bsd400"},  # tuning images: never the test set (checked)
    out="folder: model.pt (the tuned TV denoiser), tuning.csv",
    device=True,
    root=True,
    presets=PROTOCOLS,
)
