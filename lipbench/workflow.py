"""Pure helpers of the Snakemake workflow: code hashes and the command-line arguments of each
step, built from the (schema-validated) configuration."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
CODE_ROOT_VAR = "LIPBENCH_CODE_ROOT"  # hash another copy of the package (tests of the rerun logic)
EQUIVARIANCE = {"standard": "none", "random": "random", "mean": "mean"}
COMMON_CODE = ("data", "models", "io.py", "cli.py", "device.py", "seeding.py", "errors.py")
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


def train_args(config: dict[str, Any], steps: int, lr: float) -> str:
    m, t = config["model"], config["train"]
    args = [
        f"--model {m.get('name', 'dncnn')} --depth {m['depth']} --width {m['width']}",
        f"--activation {m.get('activation', 'leaky_relu')} --dataset {t['dataset']}",
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


def pnp_args(config: dict[str, Any], long: bool = False) -> str:
    """Arguments of ``lipbench pnp``: the table runs with ``pnp``'s protocol keys (default paper 1's),
    ``long`` the long runs with ``pnp.long_runs``' own (default paper 2's); the rest is shared."""
    p = config["pnp"]
    if long:
        run, defaults, every = p["long_runs"], LONG_RUN_PROTOCOL, p["long_runs"].get("record_every", 10)
    else:
        run, defaults, every = p, TABLE_PROTOCOL, p.get("record_every", 1)
    protocol = {key: run.get(key, default) for key, default in defaults.items()}
    args = [
        f"--dataset {p.get('dataset', 'bsd10')} --kernels {' '.join(p['kernels'])} --sigma {p.get('sigma', 0.01)}",
        f"--gamma {protocol['gamma']} --gamma-unit {protocol['gamma_unit']} --x0 {protocol['x0']}",
        f"--iters {run['iters']} --record-every {every} --group {protocol['group']}",
        f"--clamp {protocol['clamp']} --seed {p.get('seed', 0)} --device {config['device']}",
        f"{flag('tf32', p.get('tf32', False))} --compile {p.get('compile', 'none')}",
    ]
    args += [f"--kernel-sigma {k}={v}" for k, v in p.get("kernel_sigma", {}).items()]
    if p.get("crop"):
        args.append(f"--crop {p['crop']}")
    return " ".join([*args, root_arg(config)]).strip()


def lipschitz_args(config: dict[str, Any]) -> str:
    q = config["lipschitz"]
    args = [
        f"--dataset {q.get('dataset', 'bsd10')} --points {' '.join(q.get('points', ['noisy', 'tilde']))}",
        f"--tol {q.get('tol', 1e-4)} --max-iter {q.get('max_iter', 500)} --device {config['device']}",
        flag("tf32", q.get("tf32", False)),
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


def long_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``(λ label, method)`` of every configured long PnP run."""
    runs = config["pnp"].get("long_runs")
    return [(lam_label(lam), m) for lam in runs["lambdas"] for m in runs["methods"]] if runs else []
