"""Pure helpers of the Snakemake workflow: code hashes and the command-line arguments of each
step, built from the (schema-validated) configuration."""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import math
import os
import shlex
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lipbench.errors import LipbenchError

PACKAGE = Path(__file__).resolve().parent
CODE_ROOT_VAR = "LIPBENCH_CODE_ROOT"  # hash another copy of the package (tests of the rerun logic)
EQUIVARIANCE = {"standard": "none", "random": "random", "mean": "mean"}


def _module_file(root: Path, module: str) -> Path | None:
    """The file of the lipbench module ``module`` (``lipbench.a.b``) under the package copy ``root``."""
    base = root.joinpath(*module.split(".")[1:])
    for file in (base / "__init__.py", base.with_suffix(".py")):
        if file.is_file():
            return file
    return None


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node``, function bodies included, ``if TYPE_CHECKING:`` blocks left out
    (they never run)."""
    todo = list(ast.iter_child_nodes(node))
    while todo:
        child = todo.pop()
        test = child.test if isinstance(child, ast.If) else None
        if getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING":
            todo += child.orelse
            continue
        yield child
        todo += ast.iter_child_nodes(child)


def _imported(nodes: Iterable[ast.AST], module: str, package: bool) -> set[str]:
    """Names of the lipbench modules the import statements among ``nodes`` of ``module`` may load:
    ``import lipbench.x``, ``from lipbench.x import y`` (``y`` too, in case it is a submodule) and
    relative imports; a module's parent packages are added by :func:`code_closure`."""
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module if package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            names |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    return {name for name in names if name == "lipbench" or name.startswith("lipbench.")}


@functools.lru_cache(maxsize=64)
def _cli_imports(path: str, command: str, mtime_ns: int, size: int) -> frozenset[str]:
    """The lipbench modules ``lipbench <command>`` imports in lipbench/cli.py's functions: its
    ``cmd_*`` function, the functions a module-level table of commands names beside it
    (``"train": (summary, _train, cmd_train)``: its options' builder), ``main``, and the functions
    and classes these use (``build_parser``, ``_protocol_args``); other commands' ``cmd_*`` and
    builders are not reached (cli.py's module level: :func:`_file_imports`)."""
    tree = ast.parse(Path(path).read_bytes(), filename=path)
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    entries = [f"cmd_{command.replace('-', '_')}"]
    for node in tree.body:
        table = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        for key, value in zip(table.keys, table.values, strict=True) if isinstance(table, ast.Dict) else []:
            if isinstance(key, ast.Constant) and key.value == command:
                entries += [n.id for n in ast.walk(value) if isinstance(n, ast.Name)]
    if not [name for name in entries if name in functions]:
        raise LipbenchError(f"code hash: lipbench/cli.py has no command {command!r} ({entries[0]} or a table entry)")
    seen, todo = set(), [*entries, "main"]
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        used = {n.id for n in _walk(functions[name]) if isinstance(n, ast.Name)}
        todo += [n for n in used if n in functions and not n.startswith("cmd_")]
    return frozenset(_imported([n for name in seen for n in _walk(functions[name])], "lipbench.cli", package=False))


def _module_level(tree: ast.Module) -> Iterator[ast.AST]:
    """The nodes of a module outside its functions (cli.py's commands import their modules lazily)."""
    return _walk(ast.Module(body=[s for s in tree.body if not isinstance(s, ast.FunctionDef)], type_ignores=[]))


@functools.lru_cache(maxsize=512)
def _file_imports(path: str, module: str, mtime_ns: int, size: int) -> frozenset[str]:
    """:func:`_imported` of a whole module file (of cli.py, its module level), cached while the file
    is unchanged: every rule's hash walks mostly the same files."""
    tree = ast.parse(Path(path).read_bytes(), filename=path)
    nodes = _module_level(tree) if module == "lipbench.cli" else _walk(tree)
    return frozenset(_imported(nodes, module, package=path.endswith("__init__.py")))


def code_closure(*modules: str, command: str | None = None) -> list[str]:
    """The files (relative to the package, sorted) of the static import closure of ``modules``
    (``lipbench.training``) and of the command ``lipbench <command>`` (``train``): every lipbench
    module they import, at module level or inside functions, transitively, with the parent
    packages' ``__init__.py``; always lipbench/cli.py and lipbench/__init__.py. Of cli.py only what
    the command uses counts (its commands import their library modules lazily)."""
    root = Path(os.environ.get(CODE_ROOT_VAR) or PACKAGE)
    todo = ["lipbench", "lipbench.cli", *modules]
    for module in modules:
        if _module_file(root, module) is None:
            raise FileNotFoundError(f"code hash: no module {module} under {root}")
    if command is not None:
        stat = (root / "cli.py").stat()
        todo += _cli_imports(str(root / "cli.py"), command, stat.st_mtime_ns, stat.st_size)
    files: dict[str, Path] = {}
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b runs a/__init__.py
        file = _module_file(root, name)
        if file is None:
            continue  # ``from lipbench.x import y`` with y no module
        files[name] = file
        stat = file.stat()
        todo += _file_imports(str(file), name, stat.st_mtime_ns, stat.st_size)
    return sorted({file.relative_to(root).as_posix() for file in files.values()})


def code_hash_of(*modules: str, command: str | None = None) -> str:
    """SHA-256 (16 hex digits) of the relative paths and bytes of :func:`code_closure`'s files: a
    rule's ``params`` entry, so editing code a rule runs reruns exactly the rules running it."""
    root = Path(os.environ.get(CODE_ROOT_VAR) or PACKAGE)
    digest = hashlib.sha256()
    for path in code_closure(*modules, command=command):
        digest.update(path.encode())
        digest.update((root / path).read_bytes())
    return digest.hexdigest()[:16]


def command_code_hash(command: str) -> str:
    """:func:`code_hash_of` the code ``lipbench <command>`` runs (``train``, ``tune-tv``)."""
    return code_hash_of(command=command)


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


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


def flag(name: str, on: bool) -> str:
    """``--name`` or ``--no-name`` (argparse's BooleanOptionalAction)."""
    return f"--{name}" if on else f"--no-{name}"


def root_arg(config: dict[str, Any]) -> str:
    root = config["data"]["root"]
    return f"--root {root}" if root else ""


def model_args(model: dict[str, Any]) -> str:
    """``--model NAME`` and its keyword arguments: ``--depth ...`` for the λ grid's ``model`` section,
    a JSON ``--model-kwargs`` for any other model (a registered one or a user's ``module:factory``)."""
    name = model["name"]
    kwargs = {k: v for k, v in model.items() if k != "name"}
    if set(kwargs) <= {"depth", "width", "activation"} and {"depth", "width"} <= set(kwargs):
        args = f"--model {name} --depth {kwargs['depth']} --width {kwargs['width']}"
        return f"{args} --activation {kwargs['activation']}" if "activation" in kwargs else args
    return f"--model {shlex.quote(name)} --model-kwargs {shlex.quote(json.dumps(kwargs, sort_keys=True))}"


# The helpers below read the configuration as the Snakefile's validate() leaves it: every key with a
# default in workflow/schemas/config.schema.yaml is filled, so the schema is the one home of the
# workflow's defaults (tests/test_workflow.py checks them against the library's).


def train_args(config: dict[str, Any], steps: int, lr: float, model: dict[str, Any] | None = None) -> str:
    t = config["train"]
    args = [
        model_args(model or config["model"]),
        f"--dataset {t['dataset']}",
        f"--patch-size {t['patch_size']} --batch-size {t['batch_size']}",
        f"--sigma {t['sigma']} --loss {t['loss']} --lr {lr}",
        f"--eps {t['eps']} --power-iters {t['power_iters']} --seed {t['seed']}",
        f"--penalty-solver {t['penalty_solver']} --refine {t['refine']}",
        f"--refine-iters {t['refine_iters']} --refine-tol {t['refine_tol']}",
        f"--probe-size {t['probe_size']}",
        f"--steps {steps} --device {config['device']} --quiet",
        f"{flag('tf32', t['tf32'])} --amp {t['amp']}",
        flag("channels-last", t["channels_last"]),
    ]
    if t["max_images"]:
        args.append(f"--max-images {t['max_images']}")
    if t["lr_step"]:
        args.append(f"--lr-step {t['lr_step']}")
    if t["probe_every"]:
        args.append(f"--probe-every {t['probe_every']}")
    return " ".join([*args, root_arg(config)]).strip()


def base_args(config: dict[str, Any]) -> str:
    t = config["train"]
    return train_args(config, t["base_steps"], t["lr"])


def finetune_args(config: dict[str, Any]) -> str:
    t = config["train"]
    return train_args(config, t["finetune_steps"], t["finetune_lr"] or t["lr"])  # null: train.lr


PROTOCOL = ("gamma", "gamma_unit", "x0", "group", "clamp")  # the keys pnp.long_runs sets apart from pnp


def pnp_args(config: dict[str, Any], long: bool = False, dataset: str | None = None) -> str:
    """Arguments of ``lipbench pnp``: the table runs with ``pnp``'s protocol keys (default paper 1's),
    ``long`` the long runs with ``pnp.long_runs``' own (default paper 2's), and their own ``kernels``
    (null: ``pnp.kernels``), ``tf32`` and ``record_every``; the rest is shared.
    ``dataset``: another image set than ``pnp.dataset`` (TV's tuning images)."""
    p = config["pnp"]
    run = p["long_runs"] if long else p
    kernels = (run["kernels"] if long else None) or p["kernels"]
    args = [
        f"--dataset {dataset or p['dataset']} --kernels {' '.join(kernels)}",
        f"--sigma {p['sigma']}",
        f"--gamma {run['gamma']} --gamma-unit {run['gamma_unit']} --x0 {run['x0']}",
        f"--iters {run['iters']} --record-every {run['record_every']} --group {run['group']}",
        f"--clamp {run['clamp']} --seed {p['seed']} --device {config['device']}",
        f"{flag('tf32', run['tf32'])} --compile {p['compile']}",
    ]
    args += [f"--kernel-sigma {k}={v}" for k, v in p["kernel_sigma"].items() if k in kernels]
    if p["crop"]:
        args.append(f"--crop {p['crop']}")
    return " ".join([*args, root_arg(config)]).strip()


def lipschitz_args(config: dict[str, Any]) -> str:
    q = config["lipschitz"]
    args = [
        f"--dataset {q['dataset']} --points {' '.join(q['points'])}",
        f"--tol {q['tol']} --max-iter {q['max_iter']} --solver {q['solver']}",
        f"--device {config['device']} {flag('tf32', q['tf32'])}",
    ]
    if q["crop"]:
        args.append(f"--crop {q['crop']}")
    if q["sigma"] is not None:  # null: the model's training noise level
        args.append(f"--sigma {q['sigma']}")
    return " ".join([*args, root_arg(config)]).strip()


def denoise_args(config: dict[str, Any]) -> str:
    d = config["denoise"]
    args = [f"--dataset {d['dataset']} --device {config['device']}"]
    if d["crop"]:
        args.append(f"--crop {d['crop']}")
    return " ".join([*args, root_arg(config)]).strip()


def grid_args(config: dict[str, Any]) -> str:
    """Arguments of ``lipbench grid`` (the calibration verdict)."""
    c = config["calibration"]
    return f"--no-effect {c['no_effect']} --target {c['target']}"


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


def extra_args(config: dict[str, Any], name: str) -> str:
    """Arguments of ``lipbench train`` for the ``denoisers`` entry ``name``: from scratch, with the
    base's settings unless the entry overrides ``steps`` or ``lr`` (null: the base's) or ``lam``."""
    entry, t = config["denoisers"][name], config["train"]
    steps, lr = entry["steps"] or t["base_steps"], entry["lr"] or t["lr"]
    return f"{train_args(config, steps, lr, entry['model'])} --lam {entry['lam']} --label {name}"


def tv_args(config: dict[str, Any]) -> str:
    """Arguments of ``lipbench tune-tv``: the tables' PnP protocol on the tuning images."""
    tv, p = config["tv"], config["pnp"]
    args = [
        pnp_args(config, dataset=tv["dataset"]),
        f"--test-dataset {p['dataset']} --images {tv['images']}",
        f"--weights {' '.join(map(lam_label, tv['weights']))} --refine {tv['refine']}",  # exact, as λ
        f"--prox-iters {tv['prox_iters']} --train-sigma {config['train']['sigma']}",
    ]
    return " ".join(args)


def check_models(config: dict[str, Any]) -> None:
    """Fail before any job runs when a ``denoisers`` entry names a model that does not resolve (a
    typo, or a ``module:factory`` that does not import): one clear :class:`LipbenchError`."""
    from lipbench.models import resolve

    for name, entry in config["denoisers"].items():
        try:
            resolve(entry["model"]["name"])
        except LipbenchError as exc:
            raise LipbenchError(f"config denoisers.{name}.model.name: {exc}") from None


def long_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``(denoiser folder, method)`` of every configured long PnP run (``lam<λ>``)."""
    runs = config["pnp"].get("long_runs")  # optional: no long runs
    return [(f"lam{lam_label(lam)}", m) for lam in runs["lambdas"] for m in runs["methods"]] if runs else []
