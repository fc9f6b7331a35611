"""The points where PnP applies its denoiser: the observations ``y``, ``Aᵀy`` and ``J``'s inputs along
a PnP-PGD trajectory, for the Lipschitz evaluation of ``J`` where PnP actually goes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lipbench.restoration.physics import Blur, check_fits, observe
from lipbench.restoration.pnp import CLAMPS, pnp_pgd

MAX_BATCH = 16  # images × kernels per PnP batch, as `lipbench pnp --max-batch`


@dataclass(frozen=True)
class VisitedPoints:
    """Points of one ``kind`` (``y``, ``Aty``, ``pnp k=K``): ``x[n]`` (``C×H×W``) comes from image
    ``images[n]`` blurred by ``kernels[n]``."""

    kind: str
    images: list[str]
    kernels: list[str]
    x: list[torch.Tensor]


def iterate_kind(k: int) -> str:
    """The ``point`` name of ``J``'s input at iterate ``k``: ``pnp k=5``."""
    return f"pnp k={k}"


@dataclass(frozen=True)
class Trajectory:
    """The deblurring problems (``kernels`` by name, each with its noise in ``noise``) and PnP-PGD's
    protocol (as ``lipbench pnp``'s options of the same names) whose points are evaluated."""

    kernels: dict[str, torch.Tensor]
    noise: dict[str, float]
    gamma: float = 1.99
    gamma_unit: str = "absolute"
    x0: str = "y"
    clamp: str = "both"
    iters: int = 150


def clamped(model: nn.Module, clamp: str) -> None:
    """Set a lipbench denoiser's own eval-mode clamps as PnP with ``clamp`` runs it (``both``: its
    input and output clipped; otherwise PnP clips the iterate, if at all, itself)."""
    if clamp not in CLAMPS:
        raise ValueError(f"clamp must be one of {CLAMPS}, got {clamp!r}")
    if hasattr(model, "clamp"):
        model.clamp = clamp == "both"


def visited_points(
    model: nn.Module,
    ids: Sequence[str],
    images: Sequence[torch.Tensor],
    trajectory: Trajectory,
    iterates: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    max_batch: int = MAX_BATCH,
) -> list[VisitedPoints]:
    """``y = A x + σ n`` (the noise of ``lipbench pnp``: the same ``y``), ``Aᵀy`` and, for each ``k``
    of ``iterates``, the gradient step ``x_k − γ Aᵀ(A x_k − y)`` from PnP-PGD's ``k``-th iterate
    (``x_0`` the start), where PnP applies ``J`` next: every image × kernel, in that order, run on
    ``device`` in batches of ``max_batch`` (as ``lipbench pnp``). ``model`` runs with the protocol's
    clamps and is left as it was."""
    for name, kernel in trajectory.kernels.items():
        for shape in {tuple(x.shape) for x in images}:
            check_fits(name, kernel, shape)
    jobs = [(i, k) for i in range(len(images)) for k in trajectory.kernels]
    by_shape: dict[tuple[int, ...], list[tuple[int, str]]] = defaultdict(list)
    for job in jobs:
        by_shape[tuple(images[job[0]].shape)].append(job)
    batches = [group[i : i + max_batch] for group in by_shape.values() for i in range(0, len(group), max_batch)]
    found: dict[str, dict[tuple[int, str], torch.Tensor]] = defaultdict(dict)
    before = getattr(model, "clamp", None)
    clamped(model, trajectory.clamp)
    try:
        for batch in batches:
            A = Blur([trajectory.kernels[k] for _, k in batch], name=[k for _, k in batch])
            y = torch.stack(
                [
                    observe(images[i], Blur(trajectory.kernels[k], name=k), trajectory.noise[k], ids[i], k)
                    for i, k in batch
                ]
            ).to(device)
            result = pnp_pgd(
                model, A, y, gamma=trajectory.gamma, gamma_unit=trajectory.gamma_unit, iters=trajectory.iters,
                x0=trajectory.x0, clamp=trajectory.clamp != "none", keep_inputs=set(iterates),
            )  # fmt: skip
            with torch.no_grad():
                tensors = {"y": y, "Aty": A.adjoint(y)} | {iterate_kind(k): result.inputs[k] for k in iterates}
            for kind, t in tensors.items():
                for b, job in enumerate(batch):
                    found[kind][job] = t[b].cpu()
    finally:
        if before is not None:
            model.clamp = before
    return [
        VisitedPoints(kind, [ids[i] for i, _ in jobs], [k for _, k in jobs], [v[job] for job in jobs])
        for kind, v in found.items()
    ]
