"""Pure helpers of the Snakemake workflow: code hashes and the command-line arguments of each
step, built from the (schema-validated) configuration."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from pathlib import Path
from typing import Any

from lipbench.errors import LipbenchError

PACKAGE = Path(__file__).resolve().parent
CODE_ROOT_VAR = "LIPBENCH_CODE_ROOT"  # hash another copy of the package (tests of the rerun logic)
EQUIVARIANCE = {"standard": "none", "random": "random", "mean": "mean"}
COMMON_CODE = ("data", "models", "tv.py", "io.py", "cli.py", "device.py", "seeding.py", "errors.py")
# PnP protocols: the tables follow paper 1 (PnP-MMO's test code), the long runs paper 2 (Equivariant
# PnP: γ = 1/‖AᵀA‖, x0 = Aᵀy, random rotations, the iterate clipped). The schema's defaults match these.
TABLE_PROTOCOL = {"gamma": 1.99, "gamma_unit": "absolute", "x0": "y", "group": "d4", "clamp": "both"}
LONG_RUN_PROTOCOL = {"gamma": 1.0, "gamma_unit": "lipschitz", "x0": "adjoint", "group": "rotations", "clamp": "output"}


def code_hash(*parts: str) -> str:
    """SHA-256 (16 hex digits) of the lipbench modules a rule runs, files or folders under
    ``lipbench/``: a ``params`` entry, so editing that code reruns exactly the rules using it."""
    root = Path(os.environ.get(CODE_ROOT_VAR) or PACKAGE)
    digest = hashlib.sha256()
    for part in sorted(set(parts)):
        path = root / part
        if not path.exists():
            raise FileNotFoundError(f"code_hash: {path} does not exist")
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(root).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def lam_label(lam: float) -> str:
    """The λ of a path: ``0``, ``0.01``, ``1e-05``."""
    return f"{lam:g}"


def flag(name: str, on: bool) -> str:
    """``--name`` or ``--no-name`` (argparse's BooleanOptionalAction)."""
    return f"--{name}" if on else f"--no-{name}"


def root_arg(config: dict[str, Any]) -> str:
    root = config["data"].get("root")
    return f"--root {root}" if root else ""


def model_args(model: dict[str, Any]) -> str:
    """``--model NAME`` and its keyword arguments: ``--depth ...`` for the λ grid's ``model`` section,
    a JSON ``--model-kwargs`` for any other model (a registered one or a user's ``module:factory``)."""
    name = model.get("name", "dncnn")
    kwargs = {k: v for k, v in model.items() if k != "name"}
    if set(kwargs) <= {"depth", "width", "activation"} and {"depth", "width"} <= set(kwargs):
        return f"--model {name} --depth {kwargs['depth']} --width {kwargs['width']} " + (
            f"--activation {kwargs.get('activation', 'leaky_relu')}"
        )
    return f"--model {shlex.quote(name)} --model-kwargs {shlex.quote(json.dumps(kwargs, sort_keys=True))}"


def train_args(config: dict[str, Any], steps: int, lr: float, model: dict[str, Any] | None = None) -> str:
    t = config["train"]
    args = [
        model_args(model or config["model"]),
        f"--dataset {t['dataset']}",
        f"--patch-size {t.get('patch_size', 40)} --batch-size {t.get('batch_size', 16)}",
        f"--sigma {t.get('sigma', 0.009)} --loss {t.get('loss', 'l2')} --lr {lr}",
        f"--eps {t.get('eps', 0.05)} --power-iters {t.get('power_iters', 5)} --seed {t.get('seed', 0)}",
        f"--penalty-solver {t.get('penalty_solver', 'lanczos')} --refine {t.get('refine', 2)}",
        f"--refine-iters {t.get('refine_iters', 100)} --refine-tol {t.get('refine_tol', 1e-3)}",
        f"--probe-size {t.get('probe_size', 16)}",
        f"--steps {steps} --device {config['device']} --quiet",
        f"{flag('tf32', t.get('tf32', True))} --amp {t.get('amp', 'none')}",
        flag("channels-last", t.get("channels_last", True)),
    ]
    if t.get("max_images"):
        args.append(f"--max-images {t['max_images']}")
    if t.get("lr_step"):
        args.append(f"--lr-step {t['lr_step']}")
    if t.get("probe_every"):
        args.append(f"--probe-every {t['probe_every']}")
    return " ".join([*args, root_arg(config)]).strip()


def base_args(config: dict[str, Any]) -> str:
    t = config["train"]
    return train_args(config, t["base_steps"], t.get("lr", 1e-4))


def finetune_args(config: dict[str, Any]) -> str:
    t = config["train"]
    return train_args(config, t["finetune_steps"], t.get("finetune_lr") or t.get("lr", 1e-4))


def pnp_args(config: dict[str, Any], long: bool = False, dataset: str | None = None) -> str:
    """Arguments of ``lipbench pnp``: the table runs with ``pnp``'s protocol keys (default paper 1's),
    ``long`` the long runs with ``pnp.long_runs``' own (default paper 2's), and their own ``kernels``
    (default ``pnp.kernels``) and ``tf32`` (default off: TF32 was measured on 50 iterations, not 10 001);
    the rest is shared.
    ``dataset``: another image set than ``pnp.dataset`` (TV's tuning images)."""
    p = config["pnp"]
    if long:
        run, defaults, every = p["long_runs"], LONG_RUN_PROTOCOL, p["long_runs"].get("record_every", 10)
    else:
        run, defaults, every = p, TABLE_PROTOCOL, p.get("record_every", 1)
    protocol = {key: run.get(key, default) for key, default in defaults.items()}
    kernels = (run.get("kernels") if long else None) or p["kernels"]
    args = [
        f"--dataset {dataset or p.get('dataset', 'bsd10')} --kernels {' '.join(kernels)}",
        f"--sigma {p.get('sigma', 0.01)}",
        f"--gamma {protocol['gamma']} --gamma-unit {protocol['gamma_unit']} --x0 {protocol['x0']}",
        f"--iters {run['iters']} --record-every {every} --group {protocol['group']}",
        f"--clamp {protocol['clamp']} --seed {p.get('seed', 0)} --device {config['device']}",
        f"{flag('tf32', run.get('tf32', False))} --compile {p.get('compile', 'none')}",
    ]
    args += [f"--kernel-sigma {k}={v}" for k, v in p.get("kernel_sigma", {}).items() if k in kernels]
    if p.get("crop"):
        args.append(f"--crop {p['crop']}")
    return " ".join([*args, root_arg(config)]).strip()


def lipschitz_args(config: dict[str, Any]) -> str:
    q = config["lipschitz"]
    args = [
        f"--dataset {q.get('dataset', 'bsd10')} --points {' '.join(q.get('points', ['noisy', 'tilde']))}",
        f"--tol {q.get('tol', 1e-4)} --max-iter {q.get('max_iter', 500)} --solver {q.get('solver', 'lanczos')}",
        f"--device {config['device']} {flag('tf32', q.get('tf32', False))}",
    ]
    if q.get("crop"):
        args.append(f"--crop {q['crop']}")
    if q.get("sigma") is not None:
        args.append(f"--sigma {q['sigma']}")
    return " ".join([*args, root_arg(config)]).strip()


def denoise_args(config: dict[str, Any]) -> str:
    d = config.get("denoise", {})
    args = [f"--dataset {d.get('dataset', 'bsd68')} --device {config['device']}"]
    if d.get("crop"):
        args.append(f"--crop {d['crop']}")
    return " ".join([*args, root_arg(config)]).strip()


def grid_args(config: dict[str, Any]) -> str:
    """Arguments of ``lipbench grid`` (the calibration verdict)."""
    c = config.get("calibration", {})
    return f"--no-effect {c.get('no_effect', 0.05)} --target {c.get('target', 1.0)}"


def denoisers(config: dict[str, Any]) -> list[str]:
    """Every denoiser of the tables, as its folder name: ``lam<λ>`` for the λ grid, then the
    ``denoisers`` section's (trained by the workflow), then ``tv`` (the tuned TV baseline)."""
    grid = [f"lam{lam_label(lam)}" for lam in config["train"]["lambdas"]]
    return [*grid, *config.get("denoisers", {}), *(["tv"] if config.get("tv") else [])]


def pnp_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``(denoiser, method)`` of every PnP run of the tables: every configured method for a learned
    denoiser; TV is isotropic, so its PGD runs once (method ``standard``)."""
    methods = config["pnp"]["methods"]
    return [(d, m) for d in denoisers(config) for m in (["standard"] if d == "tv" else methods)]


def extra_args(config: dict[str, Any], name: str) -> str:
    """Arguments of ``lipbench train`` for the ``denoisers`` entry ``name``: from scratch, with the
    base's settings unless the entry overrides ``steps``, ``lr`` or ``lam``."""
    entry, t = config["denoisers"][name], config["train"]
    steps, lr = entry.get("steps") or t["base_steps"], entry.get("lr") or t.get("lr", 1e-4)
    return f"{train_args(config, steps, lr, entry['model'])} --lam {entry.get('lam', 0.0)} --label {name}"


def tv_args(config: dict[str, Any]) -> str:
    """Arguments of ``lipbench tune-tv``: the tables' PnP protocol on the tuning images."""
    tv, p = config["tv"], config["pnp"]
    args = [
        pnp_args(config, dataset=tv.get("dataset", "bsd400")),
        f"--test-dataset {p.get('dataset', 'bsd10')} --images {tv.get('images', 4)}",
        f"--weights {' '.join(f'{w:g}' for w in tv['weights'])} --refine {tv.get('refine', 4)}",
        f"--prox-iters {tv.get('prox_iters', 100)} --train-sigma {config['train'].get('sigma', 0.009)}",
    ]
    return " ".join(args)


def check_models(config: dict[str, Any]) -> None:
    """Fail before any job runs when a ``denoisers`` entry names a model that does not resolve (a
    typo, or a ``module:factory`` that does not import): one clear :class:`LipbenchError`."""
    from lipbench.models import resolve

    for name, entry in config.get("denoisers", {}).items():
        try:
            resolve(entry["model"]["name"])
        except LipbenchError as exc:
            raise LipbenchError(f"config denoisers.{name}.model.name: {exc}") from None


def long_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``(denoiser folder, method)`` of every configured long PnP run (``lam<λ>``)."""
    runs = config["pnp"].get("long_runs")
    return [(f"lam{lam_label(lam)}", m) for lam in runs["lambdas"] for m in runs["methods"]] if runs else []
