"""``lipbench certify``: one report on whether a denoiser — a lipbench checkpoint, or your own network
as ``module:factory`` with verified weights — is firmly nonexpansive where PnP goes, and what that buys.

The report (``report.md``, ``report.json``, ``report.html``; the tables as CSV beside them) holds:

* the interval of max ‖∂Q‖² (Q = 2J − Id) per point kind: the worst found there (a lower bound on
  the global max; of J, and of J with PnP's clamps) and the certified upper bound
  (:mod:`lipbench.steps.lipschitz`, every point kind, the adversarial search included);
* the equivariance gap over D4 at the noisy test crops: ‖J_G(x) − J(x)‖ and the largest
  ‖T_g⁻¹ J(T_g x) − J(x)‖, relative to the denoising residual ‖J(x) − x‖ (0: J is D4-equivariant);
* PnP and equivariant PnP on the test crops (final and best PSNR, final c_k, iterations where c_k
  increased) against TV, whose weight is tuned on BSD400 images with the same protocol.

The kernels, noise and protocol are the Lipschitz evaluation's options (``--kernels``,
``--blur-sigma``, ``--protocol``...), so the PnP runs are the trajectories the points come from.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from lipbench.data import centre_crop, image_ids, load_images
from lipbench.models import TVDenoiser, load_model, read_checkpoint, save_checkpoint
from lipbench.plumbing.command import Command
from lipbench.plumbing.device import resolve_device
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import atomic_write, staged_folder, write_json, write_table
from lipbench.plumbing.options import check, from_args, option
from lipbench.plumbing.seeding import generator
from lipbench.restoration.groups import D4, equivariant
from lipbench.steps.aggregate import convergence_stats, point_rank
from lipbench.steps.denoise import training_sigma
from lipbench.steps.lipschitz import COMMAND as LIPSCHITZ
from lipbench.steps.lipschitz import LipschitzSettings, evaluate_lipschitz
from lipbench.steps.pnp import PnPSettings, run_pnp
from lipbench.steps.pretrained import PretrainedSettings, pretrained_checkpoint
from lipbench.steps.tune_tv import chosen_weight, tune_tv, tuning_settings

REPORT = ("report.md", "report.json", "report.html", "model.pt", "lipschitz.csv", "intervals.csv", "pnp.csv")


@dataclass(frozen=True)
class CertifySettings:
    """``lipbench certify``'s own options (the Lipschitz evaluation's and the denoiser's are those of
    ``lipbench lipschitz`` and ``lipbench pretrained``)."""

    equivariance: str = option("mean", choices=("mean", "random"), help="equivariant PnP: the group mean or a random g")
    group: str = option("d4", help="group of equivariant PnP (as `lipbench pnp --group`)")
    tv_weights: tuple[float, ...] = option(
        (3e-4, 1e-3, 3e-3, 1e-2), metavar="W", above=0, help="TV prox weights tried on the tuning images"
    )
    tv_images: int = option(4, minimum=1, help="tune TV on BSD400's first N images")
    tv_prox_iters: int = option(30, minimum=1, help="FGP iterations per TV prox")

    def __post_init__(self) -> None:
        check(self, "certify settings")


def equivariance_gap(model: nn.Module, x: torch.Tensor) -> pd.DataFrame:
    """Per sample of ``x``: ‖J_G(x) − J(x)‖ / ‖J(x) − x‖ (J_G the D4 mean) and the largest
    ‖T_g⁻¹ J(T_g x) − J(x)‖ / ‖J(x) − x‖ over g, with ‖J(x) − x‖ itself."""
    group = D4()
    with torch.no_grad():
        out = model(x)
        residual = torch.linalg.vector_norm((out - x).flatten(1), dim=1)
        mean = equivariant(model, group, "mean")(x)
        worst = torch.stack(
            [torch.linalg.vector_norm((g.inverse_apply(model(g.apply(x))) - out).flatten(1), dim=1)
             for g in group.elements()]
        ).amax(0)  # fmt: skip
        gap = torch.linalg.vector_norm((mean - out).flatten(1), dim=1)
    return pd.DataFrame(
        {"residual": residual.cpu(), "gap_mean": (gap / residual).cpu(), "gap_worst_g": (worst / residual).cpu()}
    )


def intervals(lip: pd.DataFrame) -> pd.DataFrame:
    """Per point kind: the largest ‖∂Q‖² found of J and of J with PnP's clamps, and the upper bound."""
    rows = []
    for point, part in lip.groupby("point", sort=False):
        j, clamped = part[part.operator == "J"].lip2_Q, part[part.operator == "J_clamped"].lip2_Q
        rows.append({"point": point, "worst_J": j.max(), "worst_J_clamped": clamped.max() if len(clamped) else math.nan,
                     "upper": part.upper_lip2_Q.iloc[0], "points": len(part[part.operator == "J"])})  # fmt: skip
    table = pd.DataFrame(rows)
    return table.sort_values("point", key=lambda c: c.map(point_rank), ignore_index=True)


def _pnp_runs(lip: LipschitzSettings, own: CertifySettings, checkpoint: Path, root, device) -> pd.DataFrame:
    """PnP, equivariant PnP and TV-PGD (tuned) on the test crops with the evaluation's protocol."""
    base = PnPSettings(
        checkpoint=str(checkpoint), dataset=lip.dataset, kernels=lip.kernels, sigma=lip.blur_sigma,
        kernel_sigma=lip.kernel_sigma, gamma=lip.gamma, gamma_unit=lip.gamma_unit, x0=lip.x0, clamp=lip.clamp,
        iters=lip.iters, crop=lip.crop, group=own.group,
    )  # fmt: skip
    runs = {"pnp": run_pnp(base, root=root, device=device)}
    eq = dataclasses.replace(base, equivariance=own.equivariance)
    runs[eq.method] = run_pnp(eq, root=root, device=device)
    tuning = tune_tv(
        dataclasses.replace(tuning_settings(base, own.tv_images), dataset="bsd400"), own.tv_weights,
        prox_iters=own.tv_prox_iters, refine=2, root=root, device=device,
    )  # fmt: skip
    tv = TVDenoiser(weight=chosen_weight(tuning), iters=own.tv_prox_iters)
    runs["tv"] = run_pnp(base, model=tv, root=root, device=device)
    rows = []
    for name, result in runs.items():
        final = result["final"]
        stats = convergence_stats(result["records"].assign(method=name))
        rows.append(
            {
                "method": name, "psnr": final.psnr.mean(), "psnr_best": final.psnr_best.mean(),
                "psnr_input": final.psnr_input.mean(), "c_final_median": stats.c_final.median(),
                "runs_with_increases": int((stats.increases > 0).sum()), "runs": len(stats),
                **({"tv_weight": tv.weight} if name == "tv" else {}),
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def _finite(value: Any) -> Any:
    """``value``, or None for a non-finite float (strict JSON has no NaN or Infinity)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _source_payload(checkpoint: str | None, source: PretrainedSettings | None) -> dict[str, Any]:
    if (checkpoint is None) == (source is None):
        raise LipbenchError("give the denoiser as --checkpoint model.pt, or as --model (with --weights and --sha256)")
    return read_checkpoint(checkpoint) if checkpoint is not None else pretrained_checkpoint(source)


def certify(
    lip: LipschitzSettings,
    own: CertifySettings,
    out: str | Path,
    *,
    checkpoint: str | None = None,
    source: PretrainedSettings | None = None,
    root: str | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Write the report (module docstring) into ``out``, all or nothing; return its JSON content."""
    payload = _source_payload(checkpoint, source)
    with staged_folder(out) as stage:
        save_checkpoint(payload, stage / "model.pt")
        settings = dataclasses.replace(lip, checkpoint=str(stage / "model.pt"), pnp_final=None)
        lip_table = evaluate_lipschitz(settings, root=root, device=device)
        write_table(lip_table, stage / "lipschitz.csv")
        bounds = intervals(lip_table)
        write_table(bounds, stage / "intervals.csv")
        dev = resolve_device(device)
        model = load_model(stage / "model.pt", map_location=dev)
        images = [centre_crop(x, lip.crop) if lip.crop else x for x in load_images(lip.dataset, root)]
        sigma = lip.sigma if lip.sigma is not None else training_sigma(payload)
        noisy = [(x + sigma * torch.randn(x.shape, generator=generator("certify-noise", i, sigma))).to(dev)
                 for i, x in zip(image_ids(lip.dataset, root), images, strict=True)]  # fmt: skip
        gaps = pd.concat([equivariance_gap(model, x[None]) for x in noisy], ignore_index=True)
        pnp = _pnp_runs(settings, own, stage / "model.pt", root, device)
        write_table(pnp, stage / "pnp.csv")
        report = {
            "denoiser": str(payload.get("label") or payload["model_config"]["name"]),
            "model": payload["model_config"], "pretrained": payload.get("pretrained"),
            "upper_how": str(lip_table.upper_how.iloc[0]),
            "worst_found": float(bounds.worst_J.max()),
            "upper": _finite(float(bounds.upper.iloc[0])),
            "intervals": [{k: _finite(v) for k, v in row.items()} for row in bounds.to_dict("records")],
            "equivariance_gap": {"mean": float(gaps.gap_mean.mean()), "max": float(gaps.gap_mean.max()),
                                 "worst_g_max": float(gaps.gap_worst_g.max())},
            "pnp": [{k: _finite(v) for k, v in row.items()} for row in pnp.to_dict("records")],
            "settings": {**dataclasses.asdict(lip), "checkpoint": None, **dataclasses.asdict(own)},
        }  # fmt: skip
        write_json(report, stage / "report.json")
        with atomic_write(stage / "report.md", "w") as fh:
            fh.write(markdown(report, bounds, pnp))
        with atomic_write(stage / "report.html", "w") as fh:
            fh.write(to_html(report, bounds, pnp))
    return report


def _verdict(report: dict[str, Any]) -> str:
    worst, upper = report["worst_found"], report["upper"] if report["upper"] is not None else math.inf
    if worst > 1:
        return f"NOT firmly nonexpansive: ‖∂Q‖² reaches {worst:.4g} > 1 at a point in [0, 1]ⁿ"
    if upper <= 1:
        return f"firmly nonexpansive, certified: ‖∂Q‖² ≤ {upper:.4g} everywhere ({report['upper_how']})"
    return (f"no violation found (worst {worst:.4g} ≤ 1), not certified: the upper bound is {upper:.4g} "
            f"({report['upper_how']})")  # fmt: skip


def markdown(report: dict[str, Any], bounds: pd.DataFrame, pnp: pd.DataFrame) -> str:
    gap = report["equivariance_gap"]
    return (
        "\n\n".join(
            [
                f"# Certificate: {report['denoiser']}",
                f"**{_verdict(report)}.**",
                "## max ‖∂Q‖² per point kind (Q = 2J − Id): worst found (a lower bound) and the upper bound",
                bounds.to_markdown(index=False, floatfmt=".4g"),
                "## Equivariance gap over D4 (noisy test crops)",
                f"‖J_G(x) − J(x)‖ / ‖J(x) − x‖: mean {gap['mean']:.4g}, max {gap['max']:.4g}; largest over g of "
                f"‖T_g⁻¹J(T_g x) − J(x)‖ / ‖J(x) − x‖: {gap['worst_g_max']:.4g}.",
                "## PnP on the test crops, against TV",
                pnp.to_markdown(index=False, floatfmt=".4g"),
            ]
        )
        + "\n"
    )


def to_html(report: dict[str, Any], bounds: pd.DataFrame, pnp: pd.DataFrame) -> str:
    gap = report["equivariance_gap"]
    return (
        f"<h2>Certificate: {html.escape(report['denoiser'])}</h2><p><b>{html.escape(_verdict(report))}</b></p>"
        "<h3>max ‖∂Q‖² per point kind</h3>" + bounds.to_html(index=False, float_format="{:.4g}".format)
        + f"<h3>Equivariance gap over D4</h3><p>mean {gap['mean']:.4g}, max {gap['max']:.4g}, "
        f"worst g {gap['worst_g_max']:.4g}</p><h3>PnP against TV</h3>"
        + pnp.to_html(index=False, float_format="{:.4g}".format)
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    lip = from_args(LipschitzSettings, args, checkpoint="", pnp_final=None)
    source = None if args.model is None else from_args(PretrainedSettings, args)
    report = certify(
        lip, from_args(CertifySettings, args), args.out, checkpoint=args.checkpoint, source=source,
        root=args.root, device=args.device,
    )  # fmt: skip
    print(markdown(report, pd.DataFrame(report["intervals"]), pd.DataFrame(report["pnp"])))
    print(f"wrote {args.out}/report.md")
    return 0


COMMAND = Command(
    run, settings=(LipschitzSettings, PretrainedSettings, CertifySettings), out="folder of the report",
    device=True, root=True, skip=("pnp_final",),
    defaults={"checkpoint": None, "model": None, "label": "mine", "crop": 32, "tol": 1e-3, "max_iter": 300,
              "points": ("noisy", "y", "adjoint", "iterates", "search")},
    presets=LIPSCHITZ.presets,
)  # fmt: skip
