"""``lipbench lipschitz``, the Lipschitz evaluation of a trained denoiser: ‖∂J‖ and ‖∂Q‖² (Q = 2J − Id) per point.

Points (``point``), first the papers' test points:

* ``noisy`` (x + σ n, σ the training noise level), ``tilde`` (x̃ = τ J(y) + (1 − τ) x as in
  training), ``pnp`` (final PnP iterates, from ``lipbench pnp``'s ``final.pt``);

then where PnP goes, for each image × kernel of ``--kernels`` (column ``kernel``), with ``lipbench
pnp``'s noise and protocol (``--protocol`` and its options):

* ``y`` (the observation), ``Aty`` (Aᵀy), ``pnp k=K`` (J's input after PnP's K-th iterate, for K in
  ``--iterates`` and the last, ``--iters``);
* ``search``: the adversarial search of :mod:`lipbench.lipschitz.search` over [0, 1]ⁿ, from the
  points with the largest ‖∂Q‖² and from uniform random images (column ``start``: where from); its
  points are evaluated as exactly as the others, so the largest value is a lower bound on the
  denoiser's global constant.

Operators (``operator``): ``J`` (unclamped; the papers' points at ``T_g x`` for every ``g`` of D4,
``element``; ``r0`` is the image itself; the other points at ``r0`` only), the group mean ``J_G`` (the
papers' points) and ``J_clamped``, J as PnP runs it with ``--clamp`` (``both``: clamp∘J∘clamp;
``output``: clamp∘J). For orthogonal ``T_g``, ‖∂J_G(x)‖ ≤ (1/|G|) Σ_g ‖∂J(T_g x)‖: the
``bound_J_G`` column holds that mean. ``upper_lip2_Q`` (and ``upper_how``): the denoiser's certified
upper bound on sup ‖∂Q‖² of J (:func:`lipbench.lipschitz.upper_bound`), NaN when none is known.
"""

from __future__ import annotations

import argparse
import copy
from collections import defaultdict
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from lipbench.data import DATASETS, load_kernel
from lipbench.lipschitz import SOLVERS, interpolate, linearize, upper_bound
from lipbench.lipschitz.linearize import ReflectedLinearization
from lipbench.lipschitz.search import adversarial_search
from lipbench.models import denoiser_label
from lipbench.plumbing.command import Command
from lipbench.plumbing.device import resolve_device
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import write_table
from lipbench.plumbing.options import from_args, option, problems
from lipbench.plumbing.precision import tf32
from lipbench.plumbing.seeding import derive_seed, generator
from lipbench.restoration.groups import D4, equivariant
from lipbench.restoration.pnp import CLAMPS, GAMMA_UNITS
from lipbench.restoration.trajectory import Trajectory, VisitedPoints, clamped, visited_points
from lipbench.steps.denoise import evaluation_inputs, lam_of
from lipbench.steps.pnp import PROTOCOLS

POINTS = ("noisy", "tilde", "pnp", "y", "adjoint", "iterates", "search")
PAPER_POINTS = ("noisy", "tilde", "pnp")  # at every g of D4 and for J_G; the others at the images only
J_CLAMPED = "J_clamped"  # the operator PnP runs: J with the protocol's clamps (--clamp)


@dataclass(frozen=True)
class LipschitzSettings:
    """One Lipschitz evaluation; each field's default, help and bounds are those of ``lipbench
    lipschitz``'s option of the same name."""

    checkpoint: str = option(help="a model.pt written by `lipbench train` or `tune-tv`")
    dataset: str = option("bsd10", help="test images", choices=tuple(DATASETS))
    crop: int | None = option(None, minimum=1, help="centre crop size (quick CPU runs)", none="full images")
    sigma: float | None = option(None, above=0, help="noise of the noisy points", none="the training noise level")
    points: tuple[str, ...] = option(
        ("noisy", "tilde"),
        choices=POINTS,
        help="x + σn; x̃ = τJ(y) + (1 − τ)x as in training; final PnP iterates (--pnp-final); the observations y; "
        "Aᵀy; J's inputs along PnP (--iterates); an adversarial search from the worst of the others",
    )
    pnp_final: str | None = option(None, help="final.pt of `lipbench pnp` (for --points pnp)", none="none")
    max_iter: int = option(500, minimum=1, help="solver steps at most")
    tol: float = option(1e-4, minimum=0, help="relative tolerance of σ")
    seed: int = option(0, minimum=0, help="seed of the noise, τ, the start vectors and the search's random starts")
    tf32: bool = option(False, help="CUDA: TF32 convolutions in the spectral norms (they perturb σ)")
    solver: str = option(
        "lanczos", choices=tuple(SOLVERS), help="Lanczos on JᵀJ, or power iteration (PnP-MMO's test_jacobian.py)"
    )
    # where PnP goes (points y, adjoint, iterates): `lipbench pnp`'s problems and protocol
    kernels: tuple[str, ...] = option(("levin1",), metavar="KERNEL", help="blur kernels of y (as `lipbench pnp`)")
    blur_sigma: float = option(0.01, minimum=0, help="measurement noise of y (`lipbench pnp --sigma`)")
    kernel_sigma: dict[str, float] = option(
        factory=dict, metavar="KERNEL=SIGMA", help="noise of one kernel instead of --blur-sigma"
    )
    gamma: float = option(1.99, above=0, help="PnP step size (as `lipbench pnp`)")
    gamma_unit: str = option("absolute", choices=GAMMA_UNITS, help="unit of --gamma (as `lipbench pnp`)")
    x0: str = option("y", choices=("y", "adjoint"), help="PnP's first iterate")
    clamp: str = option("both", choices=CLAMPS, help="PnP's clamps (as `lipbench pnp`); also the J_clamped operator")
    iters: int = option(150, minimum=1, help="PnP iterations; the last one's point is always evaluated")
    iterates: tuple[int, ...] = option((0, 1, 5, 20, 100), minimum=0, help="PnP iterates k whose next input is a point")
    search_starts: int = option(8, minimum=0, help="the search starts from the N points with the largest ‖∂Q‖²")
    search_random: int = option(2, minimum=0, help="and from N uniformly random images")
    search_steps: int = option(100, minimum=1, help="ascent steps of the search")
    search_step: float = option(0.01, above=0, help="ascent step, in root-mean-square pixel value")
    search_beta: float = option(50.0, above=0, help="sharpness β of the smooth surrogate of (Leaky)ReLU")

    def __post_init__(self) -> None:
        if "pnp" in self.points and self.pnp_final is None:
            raise LipbenchError("--points pnp needs --pnp-final (the final.pt written by `lipbench pnp`)")
        found = problems(self)
        late = sorted(k for k in self.iterates if k > self.iters)
        if late and "iterates" in self.points:
            found.append(f"--iterates {late} lie beyond --iters {self.iters}")
        unused = sorted(set(self.kernel_sigma) - set(self.kernels))
        if unused:
            found.append(f"--kernel-sigma names kernels that are not run: {unused}")
        if "search" in self.points and self.search_starts + self.search_random == 0:
            found.append("--points search needs --search-starts or --search-random above 0")
        if found:
            raise LipbenchError("invalid Lipschitz settings: " + "; ".join(found))

    def trajectory(self, root: str | None) -> Trajectory:
        kernels = {name: load_kernel(name, root) for name in self.kernels}
        noise = {name: self.kernel_sigma.get(name, self.blur_sigma) for name in self.kernels}
        return Trajectory(kernels, noise, self.gamma, self.gamma_unit, self.x0, self.clamp, self.iters)


def _paper_points(settings: LipschitzSettings, model, ids, images, sigma) -> list[VisitedPoints]:
    out: list[VisitedPoints] = []
    none = [float("nan")] * len(ids)
    if "noisy" in settings.points or "tilde" in settings.points:
        noisy = [
            x + sigma * torch.randn(x.shape, generator=generator("lipschitz-noise", i, sigma, settings.seed))
            for i, x in zip(ids, images, strict=True)
        ]
        if "noisy" in settings.points:
            out.append(VisitedPoints("noisy", list(ids), none, noisy))
    if "tilde" in settings.points:
        tilde = [
            interpolate(model, x[None], y[None], generator("lipschitz-tau", i, settings.seed))[0]
            for i, x, y in zip(ids, images, noisy, strict=True)
        ]
        out.append(VisitedPoints("tilde", list(ids), none, tilde))
    if "pnp" in settings.points:  # with pnp_final (LipschitzSettings checks)
        finals = torch.load(settings.pnp_final, map_location="cpu", weights_only=True)
        keys = list(finals)
        out.append(VisitedPoints("pnp", keys, [float("nan")] * len(keys), [finals[k] for k in keys]))
    return out


def _points(settings: LipschitzSettings, model, ids, images, sigma, root, dev) -> list[VisitedPoints]:
    out = _paper_points(settings, model, ids, images, sigma)
    if not {"y", "adjoint", "iterates"} & set(settings.points):
        return out
    iterates = sorted({*settings.iterates, settings.iters}) if "iterates" in settings.points else []
    for points in visited_points(model, ids, images, settings.trajectory(root), iterates, device=dev):
        if points.kind not in ("y", "Aty") or ("adjoint" if points.kind == "Aty" else "y") in settings.points:
            out.append(points)
    return out


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


class OutputClamped(nn.Module):
    """``clamp(J(x), 0, 1)``: the operator of PnP with ``--clamp output`` (the iterate clipped)."""

    def __init__(self, denoiser: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x).clamp(0, 1)


def clamped_operator(model: nn.Module, clamp: str) -> nn.Module | None:
    """The denoiser as PnP with ``clamp`` runs it (a copy; None for ``none``, which is ``J`` itself)."""
    if clamp == "none":
        return None
    copy_ = copy.deepcopy(model)
    if clamp == "both":
        if not hasattr(copy_, "clamp"):
            raise LipbenchError(f"{type(model).__name__} has no eval-mode clamps: evaluate it with --clamp output")
        clamped(copy_, "both")
        return copy_
    return OutputClamped(copy_)


def _clamped_norms(op: nn.Module, x: torch.Tensor, at_j: dict[str, torch.Tensor], settings) -> dict:
    """The norms of ``op`` (J with PnP's clamps) at ``x``: recomputed where a clamp acts (an input or
    an output outside [0, 1]), elsewhere the same Jacobian as J's, so ``at_j``'s values."""
    with torch.no_grad():
        out = op(x)
        inside = ((out >= 0) & (out <= 1)).flatten(1).all(1) & ((x >= 0) & (x <= 1)).flatten(1).all(1)
    values = {k: v.clone() for k, v in at_j.items()}
    acting = (~inside).nonzero().flatten()
    if len(acting):
        fresh = _norms(op, x[acting], settings)
        for k, v in fresh.items():
            values[k][acting.to(values[k].device)] = v.to(values[k].dtype)
    return values


def _rows(points: VisitedPoints, members: list[int], operators: dict, bound=None, start=None) -> list[dict]:
    rows = []
    for op, values in operators.items():
        operator, element = ("J", op[2:]) if op.startswith("J@") else (op, "mean" if op == "J_G" else "r0")
        for b, n in enumerate(members):
            rows.append(
                {
                    "image": points.images[n], "kernel": points.kernels[n], "point": points.kind, "n": n,
                    "start": start[n] if start is not None else float("nan"),
                    "operator": operator, "element": element,
                    **{k: (v[b].item() if v.dtype != torch.bool else bool(v[b])) for k, v in values.items()},
                    "bound_J_G": bound[b].item() if bound is not None else float("nan"),
                }
            )  # fmt: skip
    return rows


def _evaluate(model, clamped_op, points: VisitedPoints, settings, dev, start=None) -> list[dict]:
    group, mean = D4(), equivariant(model, D4(), "mean")
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for n, t in enumerate(points.x):
        by_shape[tuple(t.shape)].append(n)
    rows = []
    for members in by_shape.values():
        x = torch.stack([points.x[n] for n in members]).to(dev)
        if points.kind in PAPER_POINTS:
            per_g = _per_element_norms(model, x, group.elements(), settings)
            bound = torch.stack([v["lip_J"] for v in per_g.values()]).mean(0)
            operators = {**{f"J@{k}": v for k, v in per_g.items()}, "J_G": _norms(mean, x, settings)}
            at_j = per_g[str(group.elements()[0])]
        else:
            bound, at_j = None, _norms(model, x, settings)
            operators = {"J@r0": at_j}
        if clamped_op is not None:
            operators[J_CLAMPED] = _clamped_norms(clamped_op, x, at_j, settings)
        rows += _rows(points, members, operators, bound, start)
    return rows


def _search(model, clamped_op, found: list[VisitedPoints], rows: list[dict], settings, dev) -> list[dict]:
    """The adversarial search (:mod:`lipbench.lipschitz.search`) from the ``search_starts`` points of
    ``found`` with the largest ‖∂Q‖² of J (``rows``) and ``search_random`` uniform images; its
    candidates evaluated exactly, as every other point."""
    table = pd.DataFrame(rows)
    at_images = table[(table.operator == "J") & (table.element == "r0")]
    worst = at_images.nlargest(settings.search_starts, "lip2_Q", keep="first")
    kinds = {p.kind: p for p in found}
    starts = [(kinds[r.point].x[r.n], r.image, r.kernel, r.point) for r in worst.itertuples()]
    if settings.search_random:
        if not found:
            raise LipbenchError("--points search needs another point kind too: the search starts from its images")
        g = generator("lipschitz-search", settings.seed)
        starts += [
            (torch.rand(found[0].x[0].shape, generator=g), f"uniform{r}", float("nan"), "uniform")
            for r in range(settings.search_random)
        ]
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for n, start in enumerate(starts):
        by_shape[tuple(start[0].shape)].append(n)
    candidates: dict[int, torch.Tensor] = {}
    for members in by_shape.values():
        g = torch.Generator().manual_seed(derive_seed("lipschitz-search-start", settings.seed))
        result = adversarial_search(
            model, torch.stack([starts[n][0] for n in members]).to(dev), steps=settings.search_steps,
            step=settings.search_step, beta=settings.search_beta, generator=g,
        )  # fmt: skip
        candidates |= {n: result.x[b].cpu() for b, n in enumerate(members)}
    points = VisitedPoints(
        "search", [s[1] for s in starts], [s[2] for s in starts], [candidates[n] for n in range(len(starts))]
    )
    return _evaluate(model, clamped_op, points, settings, dev, start=[s[3] for s in starts])


def evaluate_lipschitz(settings: LipschitzSettings, *, root: str | None = None, device: str = "auto") -> pd.DataFrame:
    """One row per point × operator (see the module docstring)."""
    with tf32(settings.tf32):
        return _evaluate_lipschitz(settings, root, device)


def _evaluate_lipschitz(settings: LipschitzSettings, root: str | None, device: str) -> pd.DataFrame:
    dev = resolve_device(device)
    payload, model, sigma, ids, images = evaluation_inputs(settings, root, dev)
    clamped(model, "none")  # J itself; J_clamped is a copy with PnP's clamps
    clamped_op = clamped_operator(model, settings.clamp)
    found = _points(settings, model, ids, images, sigma, root, dev)
    rows = []
    for points in found:
        rows += _evaluate(model, clamped_op, points, settings, dev)
    if "search" in settings.points:
        rows += _search(model, clamped_op, found, rows, settings, dev)
    table = pd.DataFrame(rows).drop(columns="n")
    table.insert(table.columns.get_loc("lip_J"), "sigma_noise", sigma)
    shapes = {tuple(t.shape[-2:]) for points in found for t in points.x}
    bounds = [b for b in (upper_bound(model, shape) for shape in sorted(shapes)) if b is not None]
    worst = max(bounds, key=lambda b: b.lip2_Q) if bounds else None
    table["upper_lip2_Q"] = worst.lip2_Q if worst else float("nan")
    table["upper_how"] = worst.how if worst else "no bound known"
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


COMMAND = Command(
    run, settings=(LipschitzSettings,), out="output table (.csv or .parquet)", device=True, root=True,
    presets={name: {k: v for k, v in preset.items() if k != "group"} for name, preset in PROTOCOLS.items()},
)  # fmt: skip
