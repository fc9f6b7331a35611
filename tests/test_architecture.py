"""The package's layers (docs/architecture.md): each imports only the layers below it, no modules
import each other in a circle, and the workflow's rule graph is the one the docs draw."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lipbench.plumbing.codehash import _file_imports, _module_file

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lipbench"
# bottom to top: a module may import its own layer's modules and those of the layers before it
LAYERS = ["plumbing", "data", "lipschitz", "models", "restoration", "steps", "cli", "workflow"]


def _imports() -> dict[str, set[str]]:
    """Every lipbench module → the lipbench modules it imports (module level or in functions)."""
    graph = {}
    for file in PACKAGE.rglob("*.py"):
        parts = file.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        stat = file.stat()
        found = _file_imports(str(file), name, stat.st_mtime_ns, stat.st_size)
        graph[name] = {m for m in found if _module_file(PACKAGE, m) is not None and m != name}
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_top_level_shows_the_layers():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= 12
    assert entries == sorted(["__init__.py", *(f"{x}.py" if x == "cli" else x for x in LAYERS)])


def test_every_import_goes_down_the_layers():
    upward = [
        (a, b)
        for a, imported in _imports().items()
        for b in imported
        if _layer(b) != "__init__" and _layer(a) != "__init__" and LAYERS.index(_layer(b)) > LAYERS.index(_layer(a))
    ]
    assert upward == []


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph`` that a depth-first search meets (empty: none at all)."""
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return circles


def test_no_modules_import_each_other_in_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    graph = _imports()
    # a module importing its own package's __init__ is not a circle of files
    graph = {a: {b for b in bs if not a.startswith(b + ".")} for a, bs in graph.items()}
    assert _circles(graph) == []


def _graph(dot: str) -> tuple[set[str], set[tuple[str, str]]]:
    labels = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, re.M))
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)}
    return set(labels.values()), edges


@pytest.mark.slow  # Snakemake in a subprocess
def test_the_documented_rule_graph_is_the_workflows(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--rulegraph", "--snakefile", str(REPO / "Snakefile"),
                           "--configfile", str(REPO / "config" / "config.yaml"), "--directory", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    nodes, edges = _graph(proc.stdout)
    assert len(nodes) >= 14 and ("aggregate", "reference") in edges
    assert (nodes, edges) == _graph((REPO / "docs" / "rulegraph.dot").read_text())
