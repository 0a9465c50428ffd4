"""The package layout's rules, checked on the source (see docs/architecture.md).

Imports run only downward through the layers below (a package may import itself and any lower layer, never a
higher one, lazily inside a function included); no module-level import cycle; no folder holds more than a fifth of the code; no function is
longer than :data:`MAX_FUNCTION_LINES`.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bpnetz"

#: lowest first; modules of one layer may import each other.
LAYERS = [
    ["errors", "memory"],
    ["files"],
    ["genome"],
    ["config"],
    ["store"],
    ["build"],
    ["preprocess"],
    ["simulate"],
    ["model"],
    ["predict"],
    ["shap"],
    ["motifs"],
    ["insilico"],
    ["ensemble"],
    ["batch"],
    ["demo", "api"],
    ["cli", "__main__", "__init__"],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
MAX_FUNCTION_LINES = 60
MAX_FOLDER_SHARE = 0.20


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def _unit(relative: str) -> str:
    """The layer unit of a module: its top-level folder, or its file stem at the top level."""
    first = relative.split("/")[0]
    return first.removesuffix(".py")


def _imported_units(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "bpnetz" and len(parts) > 1 and parts[1] in RANK:
                found.add(parts[1])
    return found


def test_every_unit_has_a_layer():
    units = {_unit(rel) for rel in _modules()}
    assert units <= set(RANK), f"add these to LAYERS: {sorted(units - set(RANK))}"


def test_imports_run_downward():
    upward = []
    for rel, tree in _modules().items():
        unit = _unit(rel)
        for target in _imported_units(tree):
            if RANK[target] > RANK[unit]:
                upward.append(f"{rel} imports bpnetz.{target}")
    assert not upward, "\n".join(upward)


def _module_graph() -> dict[str, set[str]]:
    """Module -> the bpnetz modules it imports at module level (``from pkg import submodule`` counts as the
    submodule, not the package)."""
    trees = {}
    for rel, tree in _modules().items():
        name = "bpnetz." + rel[:-3].replace("/", ".")
        trees[name.removesuffix(".__init__")] = tree
    graph = {}
    for name, tree in trees.items():
        deps = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bpnetz"):
                subs = {f"{node.module}.{a.name}" for a in node.names} & trees.keys()
                deps |= subs if len(subs) == len(node.names) else subs | {node.module}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("bpnetz")}
        graph[name] = {d for d in deps if d in trees and d != name}
    return graph


def test_no_import_cycle():
    graph, state, cycles = _module_graph(), {}, []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, path + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_folder_holds_more_than_a_fifth_of_the_code():
    lines = Counter()
    for path in PACKAGE.rglob("*.py"):
        lines[_unit(str(path.relative_to(PACKAGE)))] += len(path.read_text().splitlines())
    total = sum(lines.values())
    large = {unit: round(n / total, 3) for unit, n in lines.items() if n / total > MAX_FOLDER_SHARE}
    assert not large, large


def test_no_function_is_longer_than_the_limit():
    long = []
    for rel, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{rel}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "\n".join(long)


@pytest.mark.parametrize("module", ["bpnetz.store", "bpnetz.genome.intervals", "bpnetz.build.builder"])
def test_low_layers_import_without_tensorflow(module):
    """Reading and building a store must not pay TensorFlow's import (0.7 GB, seconds)."""
    import subprocess
    import sys

    code = f"import sys, {module}; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
