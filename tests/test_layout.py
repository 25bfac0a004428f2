"""The package's architecture, checked: no import cycles, no module reading another module's private names.

The layering itself (which folder may import which) is the `lint-imports` contract in pyproject.toml, run by
`make lint`; these are the rules a layers contract cannot express.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "agentcache"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_no_import_cycles() -> None:
    """No module imports itself through others, at run time (imports under `TYPE_CHECKING` aside)."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("agentcache", include_external_packages=False, exclude_type_checking_imports=True)
    modules = sorted(graph.modules)
    edges = {
        m: {i for i in graph.find_modules_directly_imported_by(m) if i != "agentcache" and not i.startswith(m + ".")}
        for m in modules
    }
    cycles = []
    for module in modules:
        for imported in edges[module]:
            if module in _reachable(imported, edges):
                cycles.append(f"{module} -> {imported}")
    assert cycles == []


def _reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        for nxt in edges.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_reads_another_modules_private_names() -> None:
    """`from agentcache.x import _name` and `x._name` (x an agentcache module) appear nowhere but in x itself;
    private *modules* (``_fork``, ``_streams``) are fine to import within the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _module_name(path)
        tree = ast.parse(path.read_text())
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agentcache"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if _is_module(target):
                        aliases[alias.asname or alias.name] = target
                    elif _private(alias.name) and node.module != here:
                        found.append(f"{here}: from {node.module} import {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("agentcache") and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
                and aliases[node.value.id] != here
                and not _is_module(f"{aliases[node.value.id]}.{node.attr}")
            ):
                found.append(f"{here}: {aliases[node.value.id]}.{node.attr}")
    assert found == []
