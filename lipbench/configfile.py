"""Workflow configuration files: read with errors that name the file and line, checked beyond
the schema (kernel names, model names) — what ``lipbench check-config`` and the Snakefile run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from lipbench.data.kernels import KERNEL_NAMES
from lipbench.errors import LipbenchError

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping of a YAML config file; a missing file, a syntax error (with its line and
    column) or a file that is not a mapping raises one :class:`LipbenchError`."""
    path = Path(path)
    if not path.is_file():
        raise LipbenchError(f"config file {path} does not exist: give an existing file (e.g. config/ci.yaml)")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise LipbenchError(f"{where}: YAML syntax error: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise LipbenchError(f"config file {path} is not YAML ({exc})") from None
    if not isinstance(config, dict):
        raise LipbenchError(f"config file {path} holds a {type(config).__name__}, not a mapping of settings")
    return config


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


def check_config(path: str | os.PathLike[str], schema: str | os.PathLike[str] = SCHEMA) -> dict[str, Any]:
    """Read ``path`` and check it as the Snakefile does (schema, with its defaults filled in; kernel
    and model names); return the validated config."""
    import jsonschema
    from snakemake.utils import validate

    from lipbench.workflow import check_models

    config = read_config(path)
    if not Path(schema).is_file():
        raise LipbenchError(f"schema {schema} does not exist: run check-config from a lipbench checkout")
    schema_doc = yaml.safe_load(Path(schema).read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema_doc)(schema_doc)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        key = ".".join(map(str, error.absolute_path)) or "(top level)"
        raise LipbenchError(f"config file {path}: {key}: {error.message}")
    validate(config, str(schema))  # as the Snakefile does: fills in the schema's defaults
    check_kernels(config)
    check_models(config)
    return config
