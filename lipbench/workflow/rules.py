"""The command line of each rule, built from the validated configuration: the keys a section sets,
passed generically as the options of its step (:func:`lipbench.plumbing.options.to_flags`), so the
steps' settings dataclasses stay the one home of every default. Also the lists the rules expand:
λ labels, denoisers, PnP runs."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shlex
from typing import Any

from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.options import default_of, to_flags
from lipbench.workflow.config import SECTIONS, check_config, option_default, section_options

# keys of pnp that belong to the table runs only: the long runs have their own (protocol: paper 2's)
TABLE_ONLY = ("protocol", "iters", "record_every", "tf32")


def _step_options(command: str) -> tuple[type, ...]:
    from lipbench.cli import command as command_of

    return command_of(command).settings


def args(command: str, values: dict[str, Any], **extra: Any) -> str:
    """``lipbench <command>``'s options setting ``values`` and ``extra`` (option name → value), as
    one shell-quoted string; only what is given is passed."""
    return shlex.join(to_flags(_step_options(command), {**values, **extra}))


def section(config: dict[str, Any], *path: str) -> dict[str, Any]:
    """The keys of the config section ``path`` that are options of its step (the others, such as
    ``train.lambdas``, are the workflow's)."""
    values = config
    for key in path:
        values = values.get(key) or {}
    options = section_options(path)
    return {k: v for k, v in values.items() if k in options}


def shared_args(config: dict[str, Any]) -> str:
    """``--device`` and ``--root``: the options of every step that runs a model or reads data."""
    return " ".join(filter(None, [shlex.join(["--device", config["device"]]), root_arg(config)]))


def root_arg(config: dict[str, Any]) -> str:
    root = config["data"]["root"]
    return shlex.join(["--root", root]) if root else ""


def data_stamp(config: dict[str, Any]) -> str:
    """A digest of the path and SHA-256 of every installed file of the configured sources:
    ``verify_data``'s ``params``, so that a file that changes, appears or disappears reruns the
    checksums (a param, not 900 inputs: Snakemake handles those slowly, in every job). Content, not
    mtimes: a data folder copied again or moved (new mtimes, the same bytes) reruns nothing, where a
    3-hour run would otherwise start again from its first job. Hashing the sources takes about 0.1 s."""
    from lipbench.data import SOURCES, data_root
    from lipbench.data.fetch import sha256_file

    root = data_root(config["data"]["root"], must_exist=False)
    digest = hashlib.sha256()
    for rel in sorted({rel for name in config["data"]["sources"] for rel in SOURCES[name].files()}):
        try:
            digest.update(f"{rel} {sha256_file(root / rel)}\n".encode())
        except OSError:
            continue  # missing or unreadable: `lipbench verify` names it
    return digest.hexdigest()[:16]


def model_options(model: dict[str, Any]) -> dict[str, Any]:
    """``model`` and ``model_kwargs`` of ``lipbench train`` from a config's ``model`` section."""
    kwargs = {k: v for k, v in model.items() if k != "name"}
    return {**({"model": model["name"]} if "name" in model else {}), **({"model_kwargs": kwargs} if kwargs else {})}


def train_args(config: dict[str, Any], **extra: Any) -> str:
    return args("train", section(config, "train"), **extra)


def base_args(config: dict[str, Any]) -> str:
    return train_args(config, **model_options(config["model"]), lam=0.0, steps=config["train"]["base_steps"])


def finetune_args(config: dict[str, Any]) -> str:
    t = config["train"]
    lr = {"lr": t["finetune_lr"]} if "finetune_lr" in t else {}
    return train_args(config, **model_options(config["model"]), steps=t["finetune_steps"], **lr)


def extra_args(config: dict[str, Any], name: str) -> str:
    """``lipbench train`` for the ``denoisers`` entry ``name``: from scratch, with the train section's
    settings and the base's step count, unless the entry sets ``steps``, ``lr`` or ``lam``."""
    entry = config["denoisers"][name]
    own = {k: entry[k] for k in ("lam", "lr") if k in entry}
    steps = entry.get("steps", config["train"]["base_steps"])
    return train_args(config, **model_options(entry["model"]), steps=steps, label=name, **own)


def pretrained(config: dict[str, Any]) -> list[str]:
    """The ``denoisers`` entries with ``weights``: pretrained, not trained (``lipbench pretrained``)."""
    return [name for name, entry in config["denoisers"].items() if "weights" in entry]


def pretrained_args(config: dict[str, Any], name: str) -> str:
    """``lipbench pretrained`` for the ``denoisers`` entry ``name`` (its model, verified weights, and
    the noise level it denoises: the entry's ``sigma``, else the training noise)."""
    entry = config["denoisers"][name]
    sigma = entry.get("sigma", config["train"].get("sigma"))
    weights = entry["weights"]
    values = {**model_options(entry["model"]), "weights": weights["path"], "sha256": weights["sha256"]}
    return args("pretrained", values, label=name, **({"train_sigma": sigma} if sigma is not None else {}))


def pnp_options(config: dict[str, Any], long: bool = False) -> dict[str, Any]:
    """Options of ``lipbench pnp`` for the table runs (``pnp``'s keys, ``--protocol`` if set) or the
    ``long`` runs (``pnp``'s keys but :data:`TABLE_ONLY`, overridden by ``pnp.long_runs``' own)."""
    p = config["pnp"]
    if not long:
        return {**section(config, "pnp"), **({"protocol": p["protocol"]} if "protocol" in p else {})}
    runs = p["long_runs"]
    values = {k: v for k, v in section(config, "pnp").items() if k not in TABLE_ONLY}
    values |= {**section(config, "pnp", "long_runs"), "protocol": runs["protocol"]}
    kernels = values["kernels"]
    if "kernel_sigma" in values:  # only the kernels a run uses
        values["kernel_sigma"] = {k: v for k, v in values["kernel_sigma"].items() if k in kernels}
    return values


def _with_protocol(values: dict[str, Any], command: str = "pnp") -> str:
    """``command``'s options with ``protocol`` first, as ``--protocol NAME`` (a preset the other
    options override)."""
    protocol = values.pop("protocol", None)
    rest = to_flags(_step_options(command), values)
    return shlex.join((["--protocol", protocol] if protocol else []) + rest)


def pnp_args(config: dict[str, Any], long: bool = False) -> str:
    return _with_protocol(pnp_options(config, long))


def tv_args(config: dict[str, Any]) -> str:
    """``lipbench tune-tv``: the tables' PnP protocol (``pnp``'s keys, but its test set) on the tuning
    images, the ``tv`` section's own options; the test set and the training noise from their sections."""
    values = {k: v for k, v in pnp_options(config).items() if k != "dataset"}
    values |= section(config, "tv")
    if "dataset" in config["pnp"]:
        values["test_dataset"] = config["pnp"]["dataset"]
    if "sigma" in config["train"]:
        values["train_sigma"] = config["train"]["sigma"]
    return _with_protocol(values, "tune-tv")


# the table runs' deblurring problems and protocol, which ``lipbench lipschitz`` follows to PnP's points
TRAJECTORY_KEYS = ("kernels", "kernel_sigma", "gamma", "gamma_unit", "x0", "clamp", "iters")


def lipschitz_args(config: dict[str, Any]) -> str:
    """``lipbench lipschitz``: the ``lipschitz`` section's options; the points where PnP goes (y, Aᵀy,
    iterates) with the table runs' kernels, noise and protocol (``pnp``'s), unless the section sets them."""
    pnp = pnp_options(config)
    values = {k: pnp[k] for k in TRAJECTORY_KEYS if k in pnp}
    if "sigma" in pnp:
        values["blur_sigma"] = pnp["sigma"]
    values |= {"protocol": pnp.get("protocol"), **section(config, "lipschitz")}
    if "iterates" not in values:  # the default iterates that the run's PnP reaches (a short run: fewer)
        iters = values.get("iters", option_default(("pnp",), "iters"))
        values["iters"] = iters
        values["iterates"] = [k for k in option_default(("lipschitz",), "iterates") if k <= iters]
    if "kernel_sigma" in values:  # only the kernels it evaluates
        values["kernel_sigma"] = {k: v for k, v in values["kernel_sigma"].items() if k in values.get("kernels", ())}
    return _with_protocol(values, "lipschitz")


def certify_args(config: dict[str, Any]) -> str:
    """``lipbench certify`` of a workflow denoiser: the Lipschitz evaluation of the tables
    (:func:`lipschitz_args`) and the ``certify`` section's own options."""
    return " ".join(filter(None, [lipschitz_args(config), args("certify", section(config, "certify"))]))


def certified_denoisers(config: dict[str, Any]) -> list[str]:
    """The denoisers ``snakemake certify`` certifies: ``certify.denoisers``, else every one of the tables."""
    names = (config.get("certify") or {}).get("denoisers")
    known = denoisers(config)
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise LipbenchError(f"config certify.denoisers: {unknown} are not denoisers of this run ({known})")
    return list(names) if names else known


def denoise_args(config: dict[str, Any]) -> str:
    return args("denoise", section(config, "denoise"))


def grid_args(config: dict[str, Any]) -> str:
    return args("grid", section(config, "calibration"))


# keys that do not change a number: the output folder's name and how the run is compared
NOT_HASHED = ("name", "reference")


def config_hash(config: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the validated configuration, without :data:`NOT_HASHED`: the
    same for the same experiment whatever its folder (ci and ci-slurm) or its reference tolerances."""
    hashed = {k: v for k, v in config.items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:12]


def lam_label(lam: float) -> str:
    """The λ of a path, exact: the shortest decimal that reads back as the same float (``repr``),
    without a trailing ``.0``: ``0``, ``0.01``, ``1e-05``, ``1.0000001e-05`` (``float(label) == lam``),
    so two λ never share a folder and a folder names its λ to the last digit."""
    value = float(lam) + 0.0  # -0.0 is 0
    if not math.isfinite(value):
        raise LipbenchError(f"λ must be finite, got {lam!r}")
    return repr(value).removesuffix(".0")


def lambda_values(config: dict[str, Any]) -> dict[str, float]:
    """The λ grid by folder label (``lam<label>``, :func:`lam_label`): the exact values the
    ``finetune`` rule passes to ``lipbench train --lam``. Stops the run, before any job, when two λ
    of the grid share a label or a long run names a λ outside the grid."""
    values: dict[str, float] = {}
    for lam in config["train"]["lambdas"]:
        label = lam_label(lam)
        if label in values:
            raise LipbenchError(
                f"config train.lambdas: {values[label]!r} and {lam!r} are the same λ (folder lam{label}): list it once"
            )
        values[label] = float(lam) + 0.0
    runs = config["pnp"].get("long_runs") or {}
    outside = [lam for lam in runs.get("lambdas", []) if lam_label(lam) not in values]
    if outside:
        raise LipbenchError(f"config pnp.long_runs.lambdas: {outside} not in train.lambdas {list(values.values())}")
    return values


def denoisers(config: dict[str, Any]) -> list[str]:
    """Every denoiser of the tables, as its folder name: ``lam<λ>`` for the λ grid, then the
    ``denoisers`` section's (trained by the workflow), then ``tv`` (the tuned TV baseline)."""
    grid = [f"lam{lam_label(lam)}" for lam in config["train"]["lambdas"]]
    return [*grid, *config["denoisers"], *(["tv"] if config.get("tv") else [])]


def pnp_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``(denoiser, method)`` of every PnP run of the tables: every configured method for a learned
    denoiser; TV is isotropic, so its PGD runs once (method ``standard``)."""
    methods = config["pnp"]["methods"]
    return [(d, m) for d in denoisers(config) for m in (["standard"] if d == "tv" else methods)]


def long_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``(denoiser folder, method)`` of every configured long PnP run (``lam<λ>``)."""
    runs = config["pnp"].get("long_runs")  # optional: no long runs
    return [(f"lam{lam_label(lam)}", m) for lam in runs["lambdas"] for m in runs["methods"]] if runs else []


def effective(config: dict[str, Any]) -> dict[str, Any]:
    """A validated ``config`` with the values each of its steps runs with, for tools that read them
    all (estimates, benchmarks): every option a section leaves out takes its step's default, the PnP
    sections' protocol preset applies (the long runs' with what they inherit from ``pnp``), and
    ``model`` gets ``lipbench train``'s model and keyword arguments."""
    from lipbench.steps.pnp import PROTOCOLS
    from lipbench.steps.train import TrainConfig

    out = copy.deepcopy(config)
    for path in SECTIONS:
        if path[-1] not in (out if len(path) == 1 else out["pnp"]) and path != ("train",):
            continue  # an optional section the configuration leaves out
        target = out.setdefault(path[0], {}) if len(path) == 1 else out["pnp"][path[1]]
        given = section(config, *path)
        if path[0] == "pnp":
            given = pnp_options(config, long=len(path) == 2)
            given = {**PROTOCOLS[given.pop("protocol", "paper1")], **given}
        defaults = {name: option_default(path, name) for name in section_options(path)}
        values = {**defaults, **given}
        target.update({k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})
    model = out.setdefault("model", {})
    model.setdefault("name", default_of(TrainConfig, "model"))
    if set(model) == {"name"}:
        model.update(default_of(TrainConfig, "model_kwargs"))
    return out


def read_effective(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`effective` of the configuration file ``path``, checked."""
    return effective(check_config(path))
