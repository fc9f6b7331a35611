"""Jacobian-vector products ``J u`` and ``Jᵀ w`` of a network at a fixed point ``x``.

Implementations of one interface (:class:`Linearization`):

* :class:`PiecewiseLinear` — the fast path for conv + ReLU/LeakyReLU/SiLU stacks (DnCNN, plain
  ``nn.Sequential``, a model of yours through :func:`piecewise_linear`): one forward records the
  activation slopes; ``J u`` and ``Jᵀ w`` are then ``conv2d`` / ``conv_transpose2d`` chains with
  those slopes, no autograd. With grad enabled, ``jvp`` is differentiable in the weights, which the
  firm-nonexpansiveness penalty uses: a (Leaky)ReLU's slopes are locally constant, a SiLU's
  ``SiLU'(h)`` depend on the weights through ``h``, so a stack with SiLUs records them once more, in
  a forward with a graph, on the first product taken with grad enabled.
* :class:`Autograd` — any differentiable ``f``: ``J u`` by forward-mode AD (``torch.func.jvp``),
  ``Jᵀ w`` by a vector-Jacobian product whose forward is recorded once. No setup cost; ``jvp``
  is differentiable in the weights.
* :class:`ReflectedLinearization` (``2 J − Id``) and :class:`GroupMeanLinearization` (``J_G``)
  combine the linearizations of their parts, so both keep the fast path.
* :class:`Traced` — any traceable ``f``: ``J u`` from ``torch.func.linearize`` (a traced graph of
  the JVP). Measured about 2.5× cheaper per iteration than :class:`Autograd` on DnCNN, after a
  one-off tracing cost of several forward+backward passes: worth it for long power iterations.

Models supply their own fast path (this module imports none of them) by defining
``fast_linearization()`` (:class:`SuppliesLinearization`): it returns a function ``x ↦`` their
:class:`Linearization` at ``x``, or None when it has none in its present state. DnCNN returns
:func:`piecewise_linear` of its layers, ``lipbench.restoration.groups.Equivariant`` (mode ``"mean"``) a
:class:`GroupMeanLinearization` of its denoiser's; a user's model (``module:factory``) gets the fast path
the same way. A plain ``nn.Sequential`` stack needs no hook, and :class:`Reflected` keeps its denoiser's.
Every other model takes the autograd path.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lipbench.plumbing.errors import LipbenchError

Function = Callable[[torch.Tensor], torch.Tensor]


class Reflected(nn.Module):
    """``Q = 2 J − Id``: J is firmly nonexpansive iff Q is nonexpansive."""

    def __init__(self, denoiser: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.denoiser(x) - x


class Linearization(Protocol):
    out: torch.Tensor

    def jvp(self, u: torch.Tensor) -> torch.Tensor: ...

    def vjp(self, w: torch.Tensor) -> torch.Tensor: ...


Builder = Callable[[torch.Tensor], Linearization]


class SuppliesLinearization(Protocol):
    """A model with its own fast path (see the module docstring)."""

    def fast_linearization(self) -> Builder | None:
        """``x ↦`` the model's linearization at ``x`` (its ``out`` being ``model(x)``), or None when none
        applies in the model's present state. Cheap (no forward pass): :func:`linearize` asks for it
        whatever the method, so a model with no fixed Jacobian refuses them all by raising a
        :class:`~lipbench.plumbing.errors.LipbenchError`."""
        ...


class Transform(Protocol):
    """An orthogonal map with its inverse (a group element of ``lipbench.restoration.groups``)."""

    def apply(self, x: torch.Tensor) -> torch.Tensor: ...

    def inverse_apply(self, y: torch.Tensor) -> torch.Tensor: ...


def _eligible(layer: nn.Module) -> bool:
    if isinstance(layer, nn.Conv2d):
        return (
            layer.stride == (1, 1)
            and layer.padding_mode == "zeros"
            and not isinstance(layer.padding, str)
            and type(layer) is nn.Conv2d
        )
    if isinstance(layer, _BatchNorm):
        return not layer.training and layer.running_mean is not None
    return type(layer) in (nn.ReLU, nn.LeakyReLU, nn.SiLU, nn.Identity)


def piecewise_linear(body: nn.Sequential, *, residual: bool = False, clamps: bool = False) -> Builder | None:
    """The fast path (:class:`PiecewiseLinear`) of ``x ↦ body(x)`` (``+ x`` when ``residual``; input and
    output clamped to [0, 1] when ``clamps``) if every layer is a stride-1 zero-padded ``nn.Conv2d``,
    an eval-mode batch-norm, a ReLU, LeakyReLU, SiLU or Identity; else None. For ``fast_linearization()``."""
    if not all(_eligible(layer) for layer in body):
        return None
    return functools.partial(PiecewiseLinear, body, residual=residual, clamps=clamps)


def fast_linearization_of(f: object) -> Builder | None:
    """``x ↦`` the fast linearization of ``f`` at ``x``, or None if ``f`` has no fast path: the one it
    supplies (``fast_linearization()``), a plain ``nn.Sequential`` stack's, or :class:`Reflected`'s."""
    if isinstance(f, Reflected):
        inner = fast_linearization_of(f.denoiser)
        return None if inner is None else lambda x: ReflectedLinearization(inner(x), x)
    hook = getattr(f, "fast_linearization", None)
    if callable(hook):
        return hook()
    return piecewise_linear(f) if isinstance(f, nn.Sequential) else None


def supports_fast_path(f: object) -> bool:
    """Whether the fast path applies: a conv + ReLU/LeakyReLU/SiLU stack or a model that supplies its own,
    possibly inside ``Reflected`` and/or an ``Equivariant`` mean."""
    try:
        return fast_linearization_of(f) is not None
    except LipbenchError:  # no fixed Jacobian at all (a random-mode Equivariant)
        return False


def _bn_scale(bn: _BatchNorm) -> torch.Tensor:
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    return scale[:, None, None]


def _inside(x: torch.Tensor) -> torch.Tensor:
    """Derivative of ``clamp(x, 0, 1)`` as autograd defines it (1 on the closed interval)."""
    return ((x >= 0) & (x <= 1)).to(x.dtype)


def _slope(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """The derivative of the activation ``layer`` at its input ``h``, as autograd computes it."""
    if isinstance(layer, nn.SiLU):
        s = torch.sigmoid(h)
        return s * (1 + h * (1 - s))
    slope = layer.negative_slope if isinstance(layer, nn.LeakyReLU) else 0.0
    one, low = (torch.tensor(v, dtype=h.dtype, device=h.device) for v in (1.0, slope))
    return torch.where(h > 0, one, low)


def _conv(r: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The convolution without its bias (the linear part of the layer)."""
    return F.conv2d(r, conv.weight, None, 1, conv.padding, conv.dilation, conv.groups)


def _conv_transpose(r: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The adjoint of a stride-1 convolution: a convolution with the spatially flipped, transposed
    kernel and the complementary padding. Same result as ``F.conv_transpose2d``, but cuDNN's float32
    transposed convolution ran 8.6× slower than this on an H100 at BSD10 size (3.45 vs 0.40 ms a layer,
    benchmarks/results/h100-2026-11-26/linearization-profile-before.json)."""
    if conv.groups != 1:
        return F.conv_transpose2d(r, conv.weight, None, 1, conv.padding, 0, conv.groups, conv.dilation)
    k, d, p = conv.kernel_size, conv.dilation, conv.padding
    padding = tuple(d[i] * (k[i] - 1) - p[i] for i in range(2))
    if min(padding) < 0:
        return F.conv_transpose2d(r, conv.weight, None, 1, conv.padding, 0, 1, conv.dilation)
    return F.conv2d(r, conv.weight.flip(-1, -2).transpose(0, 1), None, 1, padding, conv.dilation)


class PiecewiseLinear:
    """Fast ``J u`` / ``Jᵀ w`` at ``x`` of a conv + ReLU/LeakyReLU/SiLU stack ``body``, with the residual
    and clamps of :func:`piecewise_linear` (see the module docstring)."""

    def __init__(self, body: nn.Sequential, x: torch.Tensor, *, residual: bool = False, clamps: bool = False) -> None:
        if not all(_eligible(layer) for layer in body):
            raise TypeError(f"{type(body).__name__} is not a conv + ReLU/LeakyReLU/SiLU stack: use the autograd path")
        self.body, self.x, self.residual, self.clamps = body, x, residual, clamps
        self.smooth = any(isinstance(layer, nn.SiLU) for layer in body)
        self._graph_ops: list[tuple[str, object]] | None = None
        with torch.no_grad():
            self.ops, self.in_mask, self.out_mask, self.out = self._forward()

    def _forward(self):
        """One forward from ``x``: the layers' linear maps (``("slope", ∂act(h))`` for an activation),
        the clamp masks (None without clamps) and the output."""
        ops: list[tuple[str, object]] = []
        in_mask = out_mask = None
        h = self.x
        if self.clamps:
            in_mask, h = _inside(h), h.clamp(0, 1)
        skip = h
        for layer in self.body:
            if isinstance(layer, nn.Conv2d):
                ops.append(("conv", layer))
            elif isinstance(layer, _BatchNorm):
                ops.append(("bn", layer))
            elif not isinstance(layer, nn.Identity):
                ops.append(("slope", _slope(layer, h)))
            h = layer(h)
        if self.residual:
            h = h + skip
        if self.clamps:
            out_mask, h = _inside(h), h.clamp(0, 1)
        return ops, in_mask, out_mask, h

    def _ops(self) -> list[tuple[str, object]]:
        """The recorded maps; with grad enabled and SiLUs in the stack, the same maps recorded with a
        graph (once), so that a product is differentiable through the slopes too."""
        if not (self.smooth and torch.is_grad_enabled()):
            return self.ops
        if self._graph_ops is None:
            self._graph_ops = self._forward()[0]
        return self._graph_ops

    def _chain(self, r: torch.Tensor, ops, conv, first_mask, last_mask) -> torch.Tensor:
        """The layers' linear maps in the order ``ops`` (``conv`` for the convolutions), between the
        clamp masks, plus the residual connection: J for the forward order, Jᵀ for the reverse."""
        r = r if first_mask is None else r * first_mask
        skip = r
        for kind, op in ops:
            if kind == "conv":
                r = conv(r, op)
            elif kind == "slope":
                r = r * op
            else:
                r = r * _bn_scale(op)
        if self.residual:
            r = r + skip
        return r if last_mask is None else r * last_mask

    def jvp(self, u: torch.Tensor) -> torch.Tensor:
        """``J u`` (differentiable in the weights when grad is enabled)."""
        return self._chain(u, self._ops(), _conv, self.in_mask, self.out_mask)

    def vjp(self, w: torch.Tensor) -> torch.Tensor:
        """``Jᵀ w``."""
        return self._chain(w, reversed(self._ops()), _conv_transpose, self.out_mask, self.in_mask)


class ReflectedLinearization:
    """``Q = 2 J − Id`` from a linearization of ``J``."""

    def __init__(self, inner: Linearization, x: torch.Tensor) -> None:
        self.inner = inner
        self.out = 2 * inner.out - x

    def jvp(self, u: torch.Tensor) -> torch.Tensor:
        return 2 * self.inner.jvp(u) - u

    def vjp(self, w: torch.Tensor) -> torch.Tensor:
        return 2 * self.inner.vjp(w) - w


class GroupMeanLinearization:
    """``J_G = (1/|G|) Σ_g T_g⁻¹ J T_g``: ``∂J_G(x) u = (1/|G|) Σ_g T_g⁻¹ ∂J(T_g x) T_g u`` and, the
    ``T_g`` being orthogonal, the transpose is the same sum with ``∂J(T_g x)ᵀ``."""

    def __init__(self, build: Builder, elements: Sequence[Transform], x: torch.Tensor) -> None:
        """``build``: ``x ↦`` the linearization of ``J`` at ``x``; ``elements``: the ``T_g``."""
        self.elements = list(elements)
        self.parts = [build(g.apply(x)) for g in self.elements]
        self.out = self._mean([p.out for p in self.parts])

    def _mean(self, outs: list[torch.Tensor]) -> torch.Tensor:
        total = self.elements[0].inverse_apply(outs[0])
        for g, o in zip(self.elements[1:], outs[1:], strict=True):
            total = total + g.inverse_apply(o)
        return total / len(self.elements)

    def jvp(self, u: torch.Tensor) -> torch.Tensor:
        return self._mean([p.jvp(g.apply(u)) for g, p in zip(self.elements, self.parts, strict=True)])

    def vjp(self, w: torch.Tensor) -> torch.Tensor:
        return self._mean([p.vjp(g.apply(w)) for g, p in zip(self.elements, self.parts, strict=True)])


class Autograd:
    """``J u`` by ``torch.func.jvp`` and ``Jᵀ w`` by ``torch.func.vjp``, for any differentiable ``f``."""

    def __init__(self, f: Function, x: torch.Tensor) -> None:
        self.f, self.x = f, x
        self.out, self._vjp = torch.func.vjp(f, x)

    def jvp(self, u: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(self.f, (self.x,), (u,))[1]

    def vjp(self, w: torch.Tensor) -> torch.Tensor:
        return self._vjp(w)[0]


class Traced(Autograd):
    """``J u`` from a traced JVP graph (``torch.func.linearize``); ``Jᵀ w`` as :class:`Autograd`.

    The traced graph holds the weights as constants: ``jvp`` is not differentiable in them.
    """

    def __init__(self, f: Function, x: torch.Tensor) -> None:
        super().__init__(f, x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch.fx const-folding chatter
            _, self._jvp = torch.func.linearize(f, x)

    def jvp(self, u: torch.Tensor) -> torch.Tensor:
        return self._jvp(u)


METHODS = ("auto", "fast", "autograd", "traced")


def linearize(f: Function, x: torch.Tensor, method: str = "auto") -> Linearization:
    """Linearize ``f`` at ``x``. ``method``: ``"fast"`` (the fast path, see the module docstring),
    ``"autograd"``, ``"traced"``, or ``"auto"`` = fast when ``f`` has a fast path, else autograd."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method in ("fast", "auto") and isinstance(f, Reflected):  # 2J − Id keeps J's own "auto" choice
        return ReflectedLinearization(linearize(f.denoiser, x, method), x)
    build = fast_linearization_of(f)  # asked whatever the method: a model with no fixed Jacobian raises
    if method in ("fast", "auto") and build is not None:
        return build(x)
    if method == "fast":
        raise TypeError(
            f"{type(f).__name__} has no fast path (not a conv + ReLU/LeakyReLU/SiLU stack, "
            "no fast_linearization()): use the autograd path"
        )
    return Traced(f, x) if method == "traced" else Autograd(f, x)
