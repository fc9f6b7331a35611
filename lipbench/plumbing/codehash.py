"""The code hash of a step: the SHA-256 of the lipbench modules it runs (the static import closure of
its module). The workflow's rules carry it (:mod:`lipbench.workflow.codehash`), so editing code reruns
exactly the rules that run it; a training checkpoint records it, so a resume never mixes two codes."""

from __future__ import annotations

import ast
import functools
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
CODE_ROOT_VAR = "LIPBENCH_CODE_ROOT"  # hash another copy of the package (tests of the rerun logic)


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


@functools.lru_cache(maxsize=512)
def _file_imports(path: str, module: str, mtime_ns: int, size: int) -> frozenset[str]:
    """:func:`_imported` of a whole module file, cached while the file is unchanged: every rule's
    hash walks mostly the same files."""
    tree = ast.parse(Path(path).read_bytes(), filename=path)
    return frozenset(_imported(_walk(tree), module, package=path.endswith("__init__.py")))


def code_closure(*modules: str) -> list[str]:
    """The files (relative to the package, sorted) of the static import closure of ``modules``
    (``lipbench.steps.train``): every lipbench module they import, at module level or inside
    functions, transitively, with the parent packages' ``__init__.py``; always lipbench/cli.py (it
    imports the step it runs by name) and lipbench/__init__.py."""
    root = Path(os.environ.get(CODE_ROOT_VAR) or PACKAGE)
    for module in modules:
        if _module_file(root, module) is None:
            raise FileNotFoundError(f"code hash: no module {module} under {root}")
    todo = ["lipbench", "lipbench.cli", *modules]
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


def code_hash_of(*modules: str) -> str:
    """SHA-256 (16 hex digits) of the relative paths and bytes of :func:`code_closure`'s files."""
    root = Path(os.environ.get(CODE_ROOT_VAR) or PACKAGE)
    digest = hashlib.sha256()
    for path in code_closure(*modules):
        digest.update(path.encode())
        digest.update((root / path).read_bytes())
    return digest.hexdigest()[:16]
