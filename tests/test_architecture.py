"""The package's shape (issue #24): one package per stage, imports only downward, no cycle.

A static walk of every import statement under orchestrator/ (module-level, function-level and
TYPE_CHECKING imports alike) resolves each to a module of the package and checks it against the
declared order `cli → flows → publish → measure → {runtime, evaluate} → plan → core`. The package
face (`orchestrator/__init__.py`, the version) is importable from anywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "orchestrator"

# Each stage and the stages it may import (besides itself and the package face).
LAYERS = {
    "core": set(),
    "plan": {"core"},
    "runtime": {"plan", "core"},
    "evaluate": {"plan", "core"},
    "measure": {"runtime", "evaluate", "plan", "core"},
    "publish": {"measure", "runtime", "evaluate", "plan", "core"},
    "flows": {"publish", "measure", "runtime", "evaluate", "plan", "core"},
    "cli": {"flows", "publish", "measure", "runtime", "evaluate", "plan", "core"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """Every package module that `path` names in an import statement, wherever the statement sits."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            if name.split(".")[0] != PACKAGE.name:
                continue
            target = resolve(name, known)
            if target and target != here:
                found.add(target)
                break
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) for name, path in known.items()}


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_imports_only_run_downward():
    against = []
    for module, targets in graph().items():
        own = stage(module)
        for target in targets:
            other = stage(target)
            if own is None or other is None or other == own:
                continue
            if other not in LAYERS[own]:
                against.append(f"{module} -> {target}")
    assert sorted(against) == []


def test_at_most_eight_stage_packages():
    packages = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert packages == sorted(LAYERS)
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py"]


def test_the_walk_finds_function_level_and_type_checking_imports(tmp_path):
    """The guard would see an import hidden in a function or behind TYPE_CHECKING."""
    known = {"orchestrator.core.a": tmp_path, "orchestrator.flows.b": tmp_path, "orchestrator.measure.c": tmp_path}
    source = tmp_path / "orchestrator" / "core" / "a.py"
    source.parent.mkdir(parents=True)
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from orchestrator.flows import b\n"
                      "def f():\n    from ..measure import c\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "orchestrator"
    try:
        assert imports_of(source, known) == {"orchestrator.flows.b", "orchestrator.measure.c"}
    finally:
        PACKAGE = saved


@pytest.mark.parametrize("edges,expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_cycle_finder(edges, expected):
    assert cycles(edges) == expected
