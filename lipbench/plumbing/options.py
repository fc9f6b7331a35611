"""Options: the settings dataclasses are the one home of every option's default, help, choices and
bounds. :func:`option` declares a field, :func:`problems` checks an instance against its fields
(finite numbers, bounds, choices), and :func:`add_options` builds the command line from them, with
each default shown in ``--help``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from lipbench.plumbing.errors import LipbenchError

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
    tuples → several values; dicts → ``KEY=VALUE`` pairs or a JSON object (:func:`parse_mapping`)."""
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
        if isinstance(default, dict):  # parsed by from_args; None: the field's default
            kwargs.update(default=None, nargs="+", action="extend", metavar=meta["metavar"] or "KEY=VALUE")
            shown = " ".join(f"{k}={json.dumps(v)}" for k, v in default.items()) or "none"
        kwargs["help"] = meta["help"] if kwargs.get("required") else f"{meta['help']} (default: {shown})"
        if isinstance(default, dict):
            pass
        elif hint is bool:
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
    """An instance of ``cls`` from the parsed ``args`` (its fields that are present in them) and
    ``extra``; argparse's lists become the fields' tuples, ``KEY=VALUE`` lists their dicts."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in vars(args):
            continue
        value = getattr(args, f.name)
        hint = _parts(hints[f.name])[0]
        if typing.get_origin(hint) is dict:
            if value is None:
                continue  # not given: the field's default
            value = parse_mapping(value, flag(f.name), f.metadata["metavar"] or "KEY=VALUE")
            kind = typing.get_args(hint)[1]
            if kind in (int, float):
                value = {k: _number(v, kind, f"{flag(f.name)} {k}") for k, v in value.items()}
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**{**values, **extra})


def _number(value: Any, kind: type, what: str) -> Any:
    """``value`` (a JSON number, or text such as ``inf`` that JSON does not read) as ``kind``."""
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        return kind(value)
    except ValueError:
        raise LipbenchError(f"{what}={value!r} is not a number") from None


def parse_mapping(items: Sequence[str], flag_name: str, metavar: str = "KEY=VALUE") -> dict[str, Any]:
    """A dict option's command-line values: ``KEY=VALUE`` pairs (each VALUE read as JSON, else kept as
    text: ``width=32``, ``gaussian_1_6=0.008``, ``name=tv``) or one JSON object (``'{"width": 32}'``)."""
    if len(items) == 1 and items[0].lstrip()[:1] in ("{", "["):
        try:
            value = json.loads(items[0])
        except json.JSONDecodeError as exc:
            raise LipbenchError(f"{flag_name} {items[0]!r} is not a JSON object ({exc})") from None
        if not isinstance(value, dict):
            raise LipbenchError(f"{flag_name} {items[0]!r} is not a JSON object")
        return value
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or not text:
            raise LipbenchError(f"{flag_name} {item!r} is not {metavar} (or one JSON object)")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def to_flags(classes: Iterable[type], values: dict[str, Any]) -> list[str]:
    """The command line that sets ``values`` (field name → value) on the settings dataclasses
    ``classes``: the inverse of :func:`add_options` and :func:`from_args`, so a workflow passes
    exactly the keys its configuration sets. ``None`` passes nothing (the option's own default,
    which must be ``None`` too); an unknown name raises :class:`LipbenchError`."""
    fields = {f.name: (cls, f) for cls in classes for f in dataclasses.fields(cls) if "help" in f.metadata}
    args: list[str] = []
    for name, value in values.items():
        if name not in fields:
            raise LipbenchError(f"{name!r} is not an option of {', '.join(c.__name__ for c in classes)}")
        cls = fields[name][0]
        if value is None:
            if default_of(cls, name) is not None:
                raise LipbenchError(f"{flag(name)} cannot be null: its default is {default_of(cls, name)!r}")
            continue
        if isinstance(value, bool):
            args.append(flag(name) if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, dict):
            args += [flag(name), *(f"{k}={_mapping_value(v)}" for k, v in value.items())] if value else []
        elif isinstance(value, list | tuple):
            args += [flag(name), *map(str, value)]
        else:
            args += [flag(name), repr(value) if isinstance(value, float) else str(value)]
    return args


def _mapping_value(value: Any) -> str:
    """``value`` as :func:`parse_mapping` reads it back: JSON, or plain text where JSON would not read it."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value  # leaky_relu, not "leaky_relu"
    return json.dumps(value)
