"""``lipbench lipschitz``, the Lipschitz evaluation of a trained denoiser: ‖∂J‖ and ‖∂Q‖² (Q = 2J − Id) per image.

Points: ``noisy`` (x + σ n, σ the training noise level), ``tilde`` (x̃ = τ J(y) + (1 − τ) x as in
training) and ``pnp`` (final PnP iterates, from ``lipbench pnp``'s ``final.pt``). Operators: ``J``
at ``T_g x`` for every ``g`` of D4 (``g = r0`` is ``J`` itself) and the group mean ``J_G``. For
orthogonal ``T_g``, ‖∂J_G(x)‖ ≤ (1/|G|) Σ_g ‖∂J(T_g x)‖: the ``bound`` column holds that mean.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass

import pandas as pd
import torch

from lipbench.data import DATASETS
from lipbench.lipschitz import SOLVERS, interpolate, linearize
from lipbench.lipschitz.linearize import ReflectedLinearization
from lipbench.models import denoiser_label
from lipbench.plumbing.command import Command
from lipbench.plumbing.device import resolve_device
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import write_table
from lipbench.plumbing.options import check, from_args, option
from lipbench.plumbing.precision import tf32
from lipbench.plumbing.seeding import derive_seed, generator
from lipbench.restoration.groups import D4, equivariant
from lipbench.steps.denoise import evaluation_inputs, lam_of

POINTS = ("noisy", "tilde", "pnp")


@dataclass(frozen=True)
class LipschitzSettings:
    """One Lipschitz evaluation; each field's default, help and bounds are those of ``lipbench
    lipschitz``'s option of the same name."""

    checkpoint: str = option(help="a model.pt written by `lipbench train` or `tune-tv`")
    dataset: str = option("bsd10", help="test images", choices=tuple(DATASETS))
    crop: int | None = option(None, minimum=1, help="centre crop size (quick CPU runs)", none="full images")
    sigma: float | None = option(None, above=0, help="noise of the noisy points", none="the training noise level")
    points: tuple[str, ...] = option(
        ("noisy", "tilde"), choices=POINTS, help="x + σn, x̃ = τJ(y) + (1 − τ)x as in training, final PnP iterates"
    )
    pnp_final: str | None = option(None, help="final.pt of `lipbench pnp` (for --points pnp)", none="none")
    max_iter: int = option(500, minimum=1, help="solver steps at most")
    tol: float = option(1e-4, minimum=0, help="relative tolerance of σ")
    seed: int = option(0, minimum=0, help="seed of the noise, τ and the start vectors")
    tf32: bool = option(False, help="CUDA: TF32 convolutions in the spectral norms (they perturb σ)")
    solver: str = option(
        "lanczos", choices=tuple(SOLVERS), help="Lanczos on JᵀJ, or power iteration (PnP-MMO's test_jacobian.py)"
    )

    def __post_init__(self) -> None:
        if "pnp" in self.points and self.pnp_final is None:
            raise LipbenchError("--points pnp needs --pnp-final (the final.pt written by `lipbench pnp`)")
        check(self, "Lipschitz settings")


def _points(settings: LipschitzSettings, model, ids, images, sigma) -> dict[str, list[torch.Tensor]]:
    out: dict[str, list[torch.Tensor]] = {}
    if "noisy" in settings.points or "tilde" in settings.points:
        noisy = [
            x + sigma * torch.randn(x.shape, generator=generator("lipschitz-noise", i, sigma, settings.seed))
            for i, x in zip(ids, images, strict=True)
        ]
        out["noisy"] = noisy
    if "tilde" in settings.points:
        out["tilde"] = [
            interpolate(model, x[None], y[None], generator("lipschitz-tau", i, settings.seed))[0]
            for i, x, y in zip(ids, images, noisy, strict=True)
        ]
    if "pnp" in settings.points:  # with pnp_final (LipschitzSettings checks)
        finals = torch.load(settings.pnp_final, map_location="cpu", weights_only=True)
        for key, x in finals.items():
            out.setdefault("pnp", []).append(x)
            out.setdefault("pnp_ids", []).append(key)
    return {k: v for k, v in out.items() if k in settings.points or k == "pnp_ids"}


def _norms(f, x: torch.Tensor, settings: LipschitzSettings) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(derive_seed("lipschitz-start", settings.seed))
    with torch.no_grad():
        lin = linearize(f, x)  # one forward serves J and Q = 2J − Id
    solve = SOLVERS[settings.solver]
    j = solve(lin, x, max_iter=settings.max_iter, tol=settings.tol, generator=g)
    q = solve(ReflectedLinearization(lin, x), x, max_iter=settings.max_iter, tol=settings.tol, generator=g)
    return {
        "lip_J": j.sigma, "lip2_Q": q.sigma.square(), "iterations_J": j.steps, "iterations_Q": q.steps,
        "converged": j.converged & q.converged,
    }  # fmt: skip


def _per_element_norms(
    model, x: torch.Tensor, elements, settings: LipschitzSettings
) -> dict[str, dict[str, torch.Tensor]]:
    """Norms of ∂J at ``T_g x`` for every ``g``: one batched estimate per transformed shape (a 90°
    turn transposes a non-square image), samples being independent in the power iteration."""
    by_shape: dict[tuple[int, ...], list] = defaultdict(list)
    for g in elements:
        by_shape[tuple(g.apply(x[:1]).shape)].append(g)
    out = {}
    for gs in by_shape.values():
        norms = _norms(model, torch.cat([g.apply(x) for g in gs]), settings)
        for n, g in enumerate(gs):
            out[str(g)] = {k: v[n * len(x) : (n + 1) * len(x)] for k, v in norms.items()}
    return {str(g): out[str(g)] for g in elements}


def evaluate_lipschitz(settings: LipschitzSettings, *, root: str | None = None, device: str = "auto") -> pd.DataFrame:
    """One row per image × point × operator (see the module docstring)."""
    with tf32(settings.tf32):
        return _evaluate_lipschitz(settings, root, device)


def _evaluate_lipschitz(settings: LipschitzSettings, root: str | None, device: str) -> pd.DataFrame:
    dev = resolve_device(device)
    payload, model, sigma, ids, images = evaluation_inputs(settings, root, dev)
    points = _points(settings, model, ids, images, sigma)
    point_ids = points.pop("pnp_ids", None)
    group, mean = D4(), equivariant(model, D4(), "mean")
    rows = []
    for kind, tensors in points.items():
        names = point_ids if kind == "pnp" else ids
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for n, t in enumerate(tensors):
            by_shape[tuple(t.shape)].append(n)
        for members in by_shape.values():
            x = torch.stack([tensors[n] for n in members]).to(dev)
            per_g = _per_element_norms(model, x, group.elements(), settings)
            bound = torch.stack([v["lip_J"] for v in per_g.values()]).mean(0)
            operators = {**{f"J@{k}": v for k, v in per_g.items()}, "J_G": _norms(mean, x, settings)}
            for op, values in operators.items():
                for b, n in enumerate(members):
                    rows.append(
                        {
                            "image": names[n], "point": kind, "operator": "J_G" if op == "J_G" else "J",
                            "element": "mean" if op == "J_G" else op[2:], "sigma_noise": sigma,
                            **{k: (v[b].item() if v.dtype != torch.bool else bool(v[b])) for k, v in values.items()},
                            "bound_J_G": bound[b].item(),
                        }
                    )  # fmt: skip
    table = pd.DataFrame(rows)
    table.insert(0, "lam", lam_of(payload))
    table.insert(0, "denoiser", denoiser_label(payload))
    return table


def run(args: argparse.Namespace) -> int:
    table = evaluate_lipschitz(from_args(LipschitzSettings, args), root=args.root, device=args.device)
    path = write_table(table, args.out)
    summary = table.groupby(["point", "operator"])[["lip_J", "lip2_Q", "iterations_J"]].agg(["mean", "max"])
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {path} ({len(table)} rows)")
    return 0


COMMAND = Command(run, settings=(LipschitzSettings,), out="output table (.csv or .parquet)", device=True, root=True)
