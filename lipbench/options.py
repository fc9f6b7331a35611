"""Options: the settings dataclasses are the one home of every option's default, help, choices and
bounds. :func:`option` declares a field, :func:`problems` checks an instance against its fields
(finite numbers, bounds, choices), and :func:`add_options` builds the command line from them, with
each default shown in ``--help``."""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from lipbench.errors import LipbenchError

_NO_DEFAULT: Any = dataclasses.MISSING


def option(
    default: Any = _NO_DEFAULT,
    *,
    help: str,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    none: str | None = None,
    metavar: str | None = None,
    cli: bool = True,
    factory: Any = None,
) -> Any:
    """A dataclass field with its help text and checks: ``minimum``/``maximum`` (inclusive),
    ``above``/``below`` (exclusive), ``choices``; ``none`` says what a ``None`` value means in
    ``--help``; ``cli=False`` leaves it to the command's own argument (e.g. a JSON object)."""
    meta = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "minimum": minimum,
        "above": above,
        "maximum": maximum,
        "below": below,
        "none": none,
        "metavar": metavar,
        "cli": cli,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag(name: str) -> str:
    """The command-line flag of field ``name``: ``power_iters`` → ``--power-iters``."""
    return "--" + name.replace("_", "-")


def default_of(cls: type, name: str) -> Any:
    """The default of ``cls``'s field ``name`` (a default factory is called)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


def _bounds(meta: typing.Mapping[str, Any]) -> str:
    parts = [f">= {meta['minimum']:g}" if meta["minimum"] is not None else "",
             f"> {meta['above']:g}" if meta["above"] is not None else "",
             f"<= {meta['maximum']:g}" if meta["maximum"] is not None else "",
             f"< {meta['below']:g}" if meta["below"] is not None else ""]  # fmt: skip
    return " and ".join(p for p in parts if p)


def _value_problem(value: Any, meta: typing.Mapping[str, Any]) -> str | None:
    if meta["choices"] is not None and value not in meta["choices"]:
        return f"must be one of {', '.join(map(str, meta['choices']))}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    bounded = _bounds(meta)
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number" + (f" {bounded}" if bounded else "")
    lo, above, hi, below = meta["minimum"], meta["above"], meta["maximum"], meta["below"]
    broken = ((lo is not None and value < lo) or (above is not None and value <= above)
              or (hi is not None and value > hi) or (below is not None and value >= below))  # fmt: skip
    return f"must be {bounded}" if broken else None


def problems(settings: Any) -> list[str]:
    """What is wrong with ``settings``' field values, one phrase per field naming its flag."""
    out = []
    for f in dataclasses.fields(settings):
        if "help" not in f.metadata:
            continue
        value = getattr(settings, f.name)
        values = value if isinstance(value, tuple | list) else [value]
        for v in values:
            problem = None if v is None else _value_problem(v, f.metadata)
            if problem:
                out.append(f"{flag(f.name)} {problem}, got {v!r}")
                break
    return out


def check(settings: Any, what: str) -> None:
    """Raise one :class:`LipbenchError` listing every problem of ``settings`` (``what``: its name)."""
    found = problems(settings)
    if found:
        raise LipbenchError(f"invalid {what}: " + "; ".join(found))


def _parts(hint: Any) -> tuple[Any, bool]:
    """``(type, optional)`` of an annotation: ``int | None`` → ``(int, True)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> None:
    """One ``--flag`` per field of ``cls`` (``only`` these, except ``skip`` and ``cli=False`` ones):
    type, default (``defaults`` overrides), choices and help from the field; ``bool`` → ``--x/--no-x``;
    tuples → several values."""
    hints = typing.get_type_hints(cls)
    skip, defaults = set(skip), defaults or {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if f.name in skip or (only is not None and f.name not in only) or not meta.get("cli", False):
            continue
        default = defaults.get(f.name, default_of(cls, f.name))
        hint, optional = _parts(hints[f.name])
        kwargs: dict[str, Any] = {"default": default, "metavar": meta["metavar"]}
        if default is dataclasses.MISSING:
            kwargs = {"required": True, "metavar": meta["metavar"]}
        if meta["choices"] is not None:
            kwargs["choices"] = meta["choices"]
        shown = meta["none"] if default is None and meta["none"] else "%(default)s"
        if isinstance(default, tuple):
            kwargs["default"] = list(default)
            shown = " ".join(map(str, default))
        kwargs["help"] = meta["help"] if kwargs.get("required") else f"{meta['help']} (default: {shown})"
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is tuple:
            args = typing.get_args(hint)
            kwargs.update(type=args[0], nargs="+" if args[-1] is Ellipsis else len(args))
        else:
            kwargs["type"] = hint
        if optional and default is None and meta["metavar"] is None and hint in (int, float):
            kwargs["metavar"] = "N" if hint is int else "X"
        parser.add_argument(flag(f.name), **kwargs)


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """An instance of ``cls`` from the parsed ``args`` (every field present in them) and ``extra``;
    argparse's lists become the fields' tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in names}
    return cls(**{**values, **extra})
