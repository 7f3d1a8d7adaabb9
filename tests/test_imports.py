"""The package's import graph has no cycle and keeps its layers (DESIGN.md section 1).

Every module's imports are read with ``ast``, those inside functions included (a lazy import
only hides a cycle until the function runs); imports under ``if TYPE_CHECKING:`` are left out
(they never run). Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``, so an
edge to a module is an edge to its packages too, except the importer's own packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "qgfd_diffusion"
ROOT = Path(__file__).resolve().parents[1]
# (importer package, packages it must never import)
LAYERS = [
    ("evaluation", ("train",)),
    ("data", ("train", "evaluation", "sample", "models")),
    ("adapters", ("data", "train", "evaluation", "sample", "models")),
]


def _modules() -> dict[str, tuple[Path, bool]]:
    """{dotted name: (file, is a package's __init__)} for every module of the package."""
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, package: str) -> list[tuple[str, list[str]]]:
    """(module, names taken from it) for every import statement that runs, in any scope."""
    found, pending = [], [tree]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                pending.extend(child.orelse)
            elif isinstance(child, ast.Import):
                found += [(alias.name, []) for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - child.level + 1]
                module = child.module or ""
                target = ".".join([*base, module] if child.level else [module]).strip(".")
                found.append((target, [alias.name for alias in child.names]))
            else:
                pending.append(child)
    return found


def _within(module: str, package: str) -> bool:
    """True when ``module`` is ``qgfd_diffusion.<package>`` or inside it."""
    prefix = f"{PACKAGE}.{package}"
    return module == prefix or module.startswith(prefix + ".")


def _nearest_module(name: str, modules: dict) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """{module: modules it imports, packages on the way included} within the package."""
    modules, graph = _modules(), {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        targets = set()
        for module, names in _imported_names(ast.parse(path.read_text()), package):
            if module != PACKAGE and not module.startswith(PACKAGE + "."):
                continue
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            targets |= set(submodules) or {_nearest_module(module, modules)}
        for target in list(targets):
            parts = target.split(".")
            targets |= {".".join(parts[:i]) for i in range(1, len(parts))} - own_packages
        graph[name] = targets - {name}
    return graph


def tangles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of 2+ modules: each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _closed_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself (breadth first)."""
    start = min(component)
    paths = {target: [start, target] for target in graph[start] & component}
    frontier = list(paths)
    while start not in paths:
        node = frontier.pop(0)
        for target in sorted(graph[node] & component):
            if target not in paths:
                paths[target] = [*paths[node], target]
                frontier.append(target)
    return paths[start]


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    found = [
        " -> ".join(_closed_path(graph, tangle)) + f"  (all in the loop: {sorted(tangle)})"
        for tangle in tangles(graph)
    ]
    assert not found, "import cycles:\n" + "\n".join(found)


@pytest.mark.parametrize(("importer", "forbidden"), LAYERS)
def test_layers_import_only_downwards(importer, forbidden):
    bad = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if _within(module, importer)
        for target in targets
        if any(_within(target, package) for package in forbidden)
    )
    assert not bad, f"{importer}/ imports what it must not:\n" + "\n".join(bad)


def test_the_checker_sees_lazy_imports_not_type_checking_ones():
    """A lazy import inside a function closes a cycle; a TYPE_CHECKING one does not."""
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert tangles(graph) == [{"p.a", "p.b", "p.c"}]
    assert _closed_path(graph, {"p.a", "p.b", "p.c"}) == ["p.a", "p.b", "p.c", "p.a"]
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .x import X\n"
        "def f():\n    from ..y import z\n    import qgfd_diffusion.w\n"
    )
    assert _imported_names(ast.parse(source), "qgfd_diffusion.pkg") == [
        ("typing", ["TYPE_CHECKING"]),
        ("qgfd_diffusion.y", ["z"]),
        ("qgfd_diffusion.w", []),
    ]
