"""Workflow configuration: read with errors that name the file and line, validated against one
schema, and checked beyond it (kernel and model names) — what the Snakefile and ``lipbench
check-config`` run.

The schema has two parts. ``workflow/schemas/config.schema.yaml`` holds the workflow's own keys (the
λ grid, the methods, the long runs, the output name...) and their defaults. Every other key of a
section is an option of the step that section configures — ``train`` → ``lipbench train``, ``pnp`` →
``lipbench pnp``... — and its type, bounds and choices are generated here from that step's settings
dataclass (:data:`SECTIONS`), which is also the one home of its default: the rules pass only the keys
a configuration sets (:mod:`lipbench.workflow.rules`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from lipbench.data.kernels import KERNEL_NAMES
from lipbench.plumbing.errors import LipbenchError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# config section (a path of keys) → (the step whose options its other keys are, the options the
# workflow itself sets for that step, so a configuration may not)
SECTIONS: dict[tuple[str, ...], tuple[str, tuple[str, ...]]] = {
    ("train",): ("train", ("model", "model_kwargs", "label", "init", "lam", "steps")),
    ("pnp",): ("pnp", ("checkpoint", "equivariance")),
    ("pnp", "long_runs"): ("pnp", ("checkpoint", "equivariance")),
    ("tv",): (
        "tune-tv",
        ("checkpoint", "equivariance", "lipschitz_every", "max_images", "test_dataset", "train_sigma"),
    ),
    ("denoise",): ("denoise", ("checkpoint",)),
    ("lipschitz",): ("lipschitz", ("checkpoint", "pnp_final")),
    ("calibration",): ("grid", ()),
    ("certify",): ("certify", ()),
}
LONG_RUN_DEFAULTS = (
    "; unset, a key takes `pnp`'s value, except the protocol's keys (from the preset"
    " `pnp.long_runs.protocol`, paper 2's) and `iters`, `record_every` and `tf32` (their own)"
)
# tv: only the tuning's own options and its image set; the deblurring protocol is pnp's
TV_PROTOCOL_KEYS = ("dataset",)


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key written twice in a mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise _DuplicateKey(
                    problem=f"key {key!r} is set twice (first on line {first}): keep one",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep)


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping of a YAML config file; a missing file, a syntax error or a key written twice (with
    its line and column) or a file that is not a mapping raises one :class:`LipbenchError`."""
    path = Path(path)
    if not path.is_file():
        raise LipbenchError(f"config file {path} does not exist: give an existing file (e.g. config/ci.yaml)")
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as exc:
        mark = exc.problem_mark
        raise LipbenchError(f"{path}:{mark.line + 1}:{mark.column + 1}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise LipbenchError(f"{where}: YAML syntax error: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise LipbenchError(f"config file {path} is not YAML ({exc})") from None
    if not isinstance(config, dict):
        raise LipbenchError(f"config file {path} holds a {type(config).__name__}, not a mapping of settings")
    return config


def _json_type(hint: Any) -> dict[str, Any]:
    """The JSON schema of a settings field's annotation (``int | None``, ``tuple[str, ...]``...)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _json_type(args[0])
        return {**inner, "type": [inner["type"], "null"]} if "type" in inner else inner
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        spec = {"type": "array", "items": _json_type(args[0])}
        return spec if args[-1] is Ellipsis else {**spec, "minItems": len(args), "maxItems": len(args)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _json_type(typing.get_args(hint)[1])}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return {"type": simple[hint]} if hint in simple else {}


def section_options(path: tuple[str, ...]) -> dict[str, tuple[type, dataclasses.Field]]:
    """The options a configuration may set in the section ``path``, by name: ``(settings class, field)``
    of the step it configures, but the options the workflow sets itself (:data:`SECTIONS`); ``tv``: its
    own options and its image set (its deblurring protocol is ``pnp``'s)."""
    from lipbench.cli import command

    step, controlled = SECTIONS[path]
    options = {
        f.name: (cls, f)
        for cls in command(step).settings
        for f in dataclasses.fields(cls)
        if "help" in f.metadata and f.name not in controlled
    }
    if path == ("tv",):
        protocol = section_options(("pnp",))
        options = {k: v for k, v in options.items() if k in TV_PROTOCOL_KEYS or k not in protocol}
    if path == ("certify",):  # its own options: the evaluation is the lipschitz section's, the denoiser the run's
        options = {k: v for k, v in options.items() if v[0].__name__ == "CertifySettings"}
    return options


def option_default(path: tuple[str, ...], name: str) -> Any:
    """The default of option ``name`` of the section ``path``: its step's (a command may set its own)."""
    from lipbench.cli import command
    from lipbench.plumbing.options import default_of

    cls = section_options(path)[name][0]
    return command(SECTIONS[path][0]).defaults.get(name, default_of(cls, name))


def options_schema(path: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """JSON-schema properties of :func:`section_options`: type, choices, bounds and help; no defaults
    (they stay the settings')."""
    properties = {}
    for name, (cls, f) in section_options(path).items():
        spec = _json_type(typing.get_type_hints(cls)[name])
        meta = f.metadata
        target = spec["items"] if spec.get("type") == "array" else spec
        if meta["choices"] is not None:
            target["enum"] = list(meta["choices"])
        for bound, key in (("minimum", "minimum"), ("above", "exclusiveMinimum"), ("maximum", "maximum"),
                           ("below", "exclusiveMaximum")):  # fmt: skip
            if meta[bound] is not None:
                target[key] = meta[bound]
        properties[name] = {**spec, "description": meta["help"]}
    return properties


def schema() -> dict[str, Any]:
    """The whole schema: the workflow's keys (the YAML file) completed by every section's step options."""
    from lipbench.steps.pnp import METHODS, PROTOCOLS

    if not SCHEMA.is_file():
        raise LipbenchError(f"schema {SCHEMA} does not exist: run the workflow from a lipbench checkout")
    spec = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    for path in SECTIONS:
        section = spec
        for key in path:
            section = section["properties"][key]
        options = options_schema(path)
        own = section.setdefault("properties", {})
        section["properties"] = {**options, **own}  # the workflow's own description of a key wins
    pnp = spec["properties"]["pnp"]["properties"]
    for runs in (pnp, pnp["long_runs"]["properties"]):
        runs["methods"]["items"]["enum"] = list(METHODS)
        runs["protocol"]["enum"] = list(PROTOCOLS)
    return spec


def _fill_defaults(spec: dict[str, Any], config: Any) -> None:
    """Set the schema's defaults (the workflow's own keys only) where ``config`` lacks the key."""
    if not isinstance(config, dict):
        return
    for key, sub in spec.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if key in config:
            _fill_defaults(sub, config[key])
    if isinstance(spec.get("additionalProperties"), dict):
        for key, value in config.items():
            if key not in spec.get("properties", {}):
                _fill_defaults(spec["additionalProperties"], value)


def validated(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """A copy of ``config``, checked against :func:`schema` (the first problem, naming its key, raises
    :class:`LipbenchError`) and with the workflow's defaults filled in; kernel and model names
    checked. ``source`` names the configuration in errors (its file)."""
    import jsonschema

    reserved = [n for n in config.get("denoisers") or {} if isinstance(n, str) and (n == "tv" or n.startswith("lam"))]
    if reserved:
        raise LipbenchError(
            f"{source}: denoisers.{reserved[0]}: the name tv is the TV baseline's and names starting with lam are "
            "the λ grid's (lam0, lam1e-05...): give this denoiser another name"
        )
    spec = schema()
    validator = jsonschema.Draft202012Validator(spec)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        key = ".".join(map(str, error.absolute_path)) or "(top level)"
        raise LipbenchError(f"{source}: {key}: {error.message}")
    config = copy.deepcopy(config)
    _fill_defaults(spec, config)
    check_kernels(config)
    check_models(config)
    return config


def check_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``path`` and check it as the Snakefile does; return the validated config."""
    return validated(read_config(path), f"config file {path}")


def kernel_problems(config: dict[str, Any]) -> list[str]:
    """Kernels of ``pnp.kernels``, ``pnp.long_runs.kernels`` and ``pnp.kernel_sigma`` that are
    neither a known name nor an existing ``.mat``/``.npy`` file."""
    pnp = config.get("pnp", {})
    named = {
        "pnp.kernels": pnp.get("kernels") or [],
        "pnp.long_runs.kernels": (pnp.get("long_runs") or {}).get("kernels") or [],
        "pnp.kernel_sigma": list(pnp.get("kernel_sigma") or {}),
    }
    out = []
    for key, names in named.items():
        for name in names:
            known = name in KERNEL_NAMES or (Path(name).suffix in (".mat", ".npy") and Path(name).is_file())
            if not known:
                out.append(f"{key}: unknown kernel {name!r}")
    return out


def check_kernels(config: dict[str, Any]) -> None:
    """Fail before any job runs when the config names a kernel that does not exist."""
    problems = kernel_problems(config)
    if problems:
        raise LipbenchError(
            f"config {'; '.join(problems)}: use one of {', '.join(KERNEL_NAMES)}, or a path to a .mat/.npy file"
        )


def check_models(config: dict[str, Any]) -> None:
    """Fail before any job runs when a ``denoisers`` entry names a model that does not resolve (a
    typo, or a ``module:factory`` that does not import): one clear :class:`LipbenchError`."""
    from lipbench.models import resolve

    for name, entry in config.get("denoisers", {}).items():
        try:
            resolve(entry["model"]["name"])
        except LipbenchError as exc:
            raise LipbenchError(f"config denoisers.{name}.model.name: {exc}") from None


def options_markdown() -> str:
    """The step options a configuration may set, section by section, as Markdown tables (key,
    meaning, default): docs/configuration.md holds this text, and a test keeps them equal."""
    out = []
    for path, (step, _) in SECTIONS.items():
        long = path == ("pnp", "long_runs")  # its defaults are pnp's values, or its protocol preset's
        out += [
            f"`{'.'.join(path)}` — options of `lipbench {step}`" + (LONG_RUN_DEFAULTS if long else "") + "\n",
            "| key | meaning | default |",
            "| --- | --- | --- |",
        ]
        for name, (_, f) in section_options(path).items():
            if long:
                out.append(f"| `{name}` | {f.metadata['help'].replace('|', chr(92) + '|')} | see above |")
                continue
            default = option_default(path, name)
            shown = f.metadata["none"] if default is None and f.metadata["none"] else default
            shown = " ".join(map(str, shown)) if isinstance(shown, tuple) else shown
            meaning = f.metadata["help"].replace("|", "\\|")
            shown = "required" if shown is dataclasses.MISSING else "—" if shown == {} else f"`{shown}`"
            out.append(f"| `{name}` | {meaning} | {shown} |")
        out.append("")
    return "\n".join(out)
