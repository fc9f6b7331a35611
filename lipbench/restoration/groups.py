"""Exact group actions on images and equivariant denoisers (Terris et al., CVPR 2024).

An :class:`Element` acts on ``B×C×H×W`` tensors as ``T_g x = S_s(F^f(R^r x))``: ``r`` quarter
turns (``torch.rot90``; a 90° turn transposes a non-square image, nothing is cropped or
resampled), an optional left-right flip, then a circular shift by ``s = (dh, dw)`` pixels. Every
``T_g`` permutes pixels, so it is orthogonal and :meth:`Element.inverse_apply` undoes it exactly.

Groups: :class:`D4` (8 elements), :class:`Rotations` (4), :class:`Flips` (identity, left-right,
up-down, both), :class:`Shifts` (a range of circular shifts, the paper's code uses [−64, 63]) and
:class:`Product` (``S ∘ D``, e.g. ``Product(D4(), Shifts())``). Random draws only through an
explicit CPU ``torch.Generator``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from lipbench.plumbing.errors import LipbenchError

if TYPE_CHECKING:
    from lipbench.lipschitz.linearize import Builder


@dataclass(frozen=True)
class Element:
    """``T_g = shift(shift) ∘ flip^flip ∘ rot90^rot``."""

    rot: int = 0
    flip: bool = False
    shift: tuple[int, int] = (0, 0)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.rot90(x, self.rot % 4, dims=(-2, -1)) if self.rot % 4 else x
        out = out.flip(-1) if self.flip else out
        return torch.roll(out, self.shift, dims=(-2, -1)) if any(self.shift) else out

    def inverse_apply(self, y: torch.Tensor) -> torch.Tensor:
        out = torch.roll(y, (-self.shift[0], -self.shift[1]), dims=(-2, -1)) if any(self.shift) else y
        out = out.flip(-1) if self.flip else out
        return torch.rot90(out, -(self.rot % 4), dims=(-2, -1)) if self.rot % 4 else out

    def __str__(self) -> str:
        return f"r{self.rot % 4}{'f' if self.flip else ''}" + (
            f"s{self.shift[0]},{self.shift[1]}" if any(self.shift) else ""
        )


class Group:
    """A finite set of :class:`Element` s, enumerable and sampled uniformly."""

    name = "group"

    def elements(self) -> list[Element]:
        raise NotImplementedError

    def sample(self, generator: torch.Generator) -> Element:
        items = self.elements()
        return items[int(torch.randint(len(items), (1,), generator=generator))]

    def __len__(self) -> int:
        return len(self.elements())


class D4(Group):
    """Rotations by multiples of 90° and their compositions with a flip (the dihedral group, 8)."""

    name = "d4"

    def elements(self) -> list[Element]:
        return [Element(r, f) for f in (False, True) for r in range(4)]


class Rotations(Group):
    """Rotations by 0, 90, 180 and 270 degrees."""

    name = "rotations"

    def elements(self) -> list[Element]:
        return [Element(r) for r in range(4)]


class Flips(Group):
    """Identity, left-right flip, up-down flip, both (= 180° rotation): a subgroup of D4."""

    name = "flips"

    def elements(self) -> list[Element]:
        return [Element(0), Element(0, True), Element(2, True), Element(2)]


class Shifts(Group):
    """Circular shifts ``(dh, dw)`` with ``low <= dh, dw <= high``."""

    name = "shifts"

    def __init__(self, low: int = -64, high: int = 63) -> None:
        if low > high:
            raise LipbenchError(f"shift range [{low}, {high}] is empty")
        self.low, self.high = low, high

    def elements(self) -> list[Element]:
        span = range(self.low, self.high + 1)
        return [Element(shift=(a, b)) for a, b in itertools.product(span, span)]

    def sample(self, generator: torch.Generator) -> Element:
        a, b = torch.randint(self.low, self.high + 1, (2,), generator=generator).tolist()
        return Element(shift=(a, b))

    def __len__(self) -> int:
        return (self.high - self.low + 1) ** 2


class Product(Group):
    """``{S ∘ D}`` for ``S`` in a shift group and ``D`` in a rotation/flip group."""

    def __init__(self, turns: Group, shifts: Shifts) -> None:
        self.turns, self.shifts = turns, shifts
        self.name = f"{turns.name}+{shifts.name}"

    def elements(self) -> list[Element]:
        return [Element(d.rot, d.flip, s.shift) for s in self.shifts.elements() for d in self.turns.elements()]

    def sample(self, generator: torch.Generator) -> Element:
        d = self.turns.sample(generator)
        return Element(d.rot, d.flip, self.shifts.sample(generator).shift)

    def __len__(self) -> int:
        return len(self.turns) * len(self.shifts)


GROUPS = {"d4": D4, "rotations": Rotations, "flips": Flips, "shifts": Shifts}


def build_group(name: str, shift_range: tuple[int, int] = (-64, 63)) -> Group:
    """``d4``, ``rotations``, ``flips``, ``shifts`` or a product such as ``d4+shifts``."""
    parts = name.split("+")
    unknown = [p for p in parts if p not in GROUPS]
    if unknown or not 1 <= len(parts) <= 2:
        raise LipbenchError(f"unknown group {name!r}: use one of {', '.join(GROUPS)}, or TURNS+shifts (e.g. d4+shifts)")
    make = {"shifts": lambda: Shifts(*shift_range)}
    groups = [make.get(p, GROUPS[p])() for p in parts]
    if len(groups) == 1:
        return groups[0]
    turns, shifts = groups
    if not isinstance(shifts, Shifts) or isinstance(turns, Shifts):
        raise LipbenchError(f"group product {name!r} must be TURNS+shifts, e.g. d4+shifts")
    return Product(turns, shifts)


class Equivariant(nn.Module):
    """``T_g⁻¹ J(T_g x)``: ``mode="random"`` draws one ``g`` per call from ``generator``;
    ``mode="mean"`` averages over the whole group, ``J_G = (1/|G|) Σ_g T_g⁻¹ J T_g`` (a loop)."""

    def __init__(
        self, denoiser: nn.Module, group: Group, mode: str = "random", generator: torch.Generator | None = None
    ):
        super().__init__()
        if mode not in ("random", "mean"):
            raise LipbenchError(f"equivariance mode must be 'random' or 'mean', got {mode!r}")
        if mode == "random" and (generator is None or generator.device.type != "cpu"):
            raise LipbenchError("mode='random' needs an explicit CPU torch.Generator")
        self.denoiser, self.group, self.mode, self.generator = denoiser, group, mode, generator
        self.last: Element | None = None  # the element drawn by the last random call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "random":
            self.last = g = self.group.sample(self.generator)
            return g.inverse_apply(self.denoiser(g.apply(x)))
        elements = self.group.elements()
        total = elements[0].inverse_apply(self.denoiser(elements[0].apply(x)))
        for g in elements[1:]:
            total = total + g.inverse_apply(self.denoiser(g.apply(x)))
        return total / len(elements)

    def fast_linearization(self) -> Builder | None:
        """The fast Jacobian products of :mod:`lipbench.lipschitz.linearize`: in mode ``"mean"`` over a
        denoiser that has them, ``∂J_G`` from its ``∂J(T_g x)`` (:class:`GroupMeanLinearization`); else
        None. A random-mode wrapper has no fixed Jacobian: refused, whatever the method."""
        if self.mode == "random":
            raise LipbenchError(
                "a random-mode equivariant denoiser has no fixed Jacobian: "
                "use its mode='mean' version or the denoiser it wraps"
            )
        from lipbench.lipschitz.linearize import GroupMeanLinearization, fast_linearization_of  # on use

        build = fast_linearization_of(self.denoiser)
        if build is None:
            return None
        elements = self.group.elements()
        return lambda x: GroupMeanLinearization(build, elements, x)


def equivariant(
    denoiser: nn.Module, group: Group, mode: str = "random", generator: torch.Generator | None = None
) -> Equivariant:
    """Wrap ``denoiser`` to act equivariantly (see :class:`Equivariant`)."""
    return Equivariant(denoiser, group, mode, generator)
