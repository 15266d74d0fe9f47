"""The layout docs/architecture.md describes, read from the source: the schema and events
packages never import each other or the runtime, no package has an import cycle, and no
module is a grab bag named utils, common or helpers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = {
    "dockrion_schema": ROOT / "packages" / "schema" / "dockrion_schema",
    "dockrion_events": ROOT / "packages" / "events" / "dockrion_events",
    "dockrion_runtime": ROOT / "packages" / "runtime" / "dockrion_runtime",
}
# What each package may import of the others.
ALLOWED = {
    "dockrion_schema": set(),
    "dockrion_events": set(),
    "dockrion_runtime": {"dockrion_schema", "dockrion_events"},
}


def _modules(package: str) -> dict[str, Path]:
    root = PACKAGES[package]
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import a module makes, those inside functions included (an import on use still
    ties the two modules together: a cycle through one is a cycle), but not those under
    `if TYPE_CHECKING:`, which only the type checker runs."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found += [n for n in node.orelse if isinstance(n, ast.Import | ast.ImportFrom)]
        else:
            found += _imports(node)
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement names (`from . import x` names module `x` too)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def _graph(package: str) -> dict[str, set[str]]:
    modules = _modules(package)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str] = set()
        for node in _imports(tree):
            for target in _targets(module, path.name == "__init__.py", node):
                # Importing a.b.c runs a, a.b and a.b.c; the importer's own packages are
                # already being imported and are not an edge.
                parts = target.split(".")
                for end in range(1, len(parts) + 1):
                    name = ".".join(parts[:end])
                    if name in modules and name != module and not module.startswith(name + "."):
                        edges.add(name)
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_imports_inside_functions_are_edges() -> None:
    tree = ast.parse(
        "import a\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import hidden\n"
        "def f():\n    import b\n"
        "class C:\n    def g(self):\n        from c import d\n"
    )
    names = {alias.name for node in _imports(tree) for alias in node.names}
    assert {"a", "b", "d"} <= names
    assert "hidden" not in names


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycle(package: str) -> None:
    graph = _graph(package)
    assert len(graph) > 5  # the package was found and read
    assert _cycles(graph) == []


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_packages_import_only_what_they_build_on(package: str) -> None:
    others = set(PACKAGES) - {package} - ALLOWED[package]
    wrong: list[str] = []
    for module, path in _modules(package).items():
        # Every import, wherever it is: a function-level import still ships the dependency.
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "level", 0) == 0:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                wrong += [f"{module}: {n}" for n in names if n.split(".")[0] in others]
    assert wrong == []


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_grab_bag_modules(package: str) -> None:
    names = {name.rsplit(".", 1)[-1].lstrip("_") for name in _modules(package)}
    assert names.isdisjoint({"utils", "util", "common", "helpers", "misc"})


def _runtime_imports() -> dict[str, set[str]]:
    """Each runtime module -> the top-level names of everything it imports, and its own
    package's modules in full."""
    found: dict[str, set[str]] = {}
    modules = _modules("dockrion_runtime")
    graph = _graph("dockrion_runtime")
    for module, path in modules.items():
        names = set(graph[module])
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[module] = names
    return found


def test_no_runtime_module_imports_the_package_root() -> None:
    """`from dockrion_runtime import x` inside the package runs `__init__`, which builds the
    app: a cycle the module graph would not show."""
    wrong = [m for m, names in _runtime_imports().items() if "dockrion_runtime" in names]
    assert wrong == []


def test_only_serve_imports_uvicorn() -> None:
    wrong = [
        m
        for m, names in _runtime_imports().items()
        if "uvicorn" in names and not m.startswith("dockrion_runtime.serve.")
    ]
    assert wrong == []


# What each family of the runtime may import of the others: dependencies point from the
# request's edge (endpoints, routes, app) towards the leaves (errors, logs, settings).
FORBIDDEN = {
    "dockrion_runtime.errors": ("dockrion_runtime.",),  # a leaf, but for the request id
    "dockrion_runtime.auth": ("dockrion_runtime.wire", "dockrion_runtime.endpoints"),
    "dockrion_runtime.engine": ("dockrion_runtime.wire", "dockrion_runtime.endpoints"),
    "dockrion_runtime.wire": ("dockrion_runtime.endpoints", "dockrion_runtime.serve"),
    "dockrion_runtime.serve": ("dockrion_runtime.endpoints", "dockrion_runtime.wire"),
    "dockrion_runtime.agents": (
        "dockrion_runtime.endpoints",
        "dockrion_runtime.wire",
        "dockrion_runtime.auth",
        "dockrion_runtime.engine",
    ),
}
LEAF_ALLOWED = {"dockrion_runtime.errors": {"dockrion_runtime.logs"}}


@pytest.mark.parametrize("family", sorted(FORBIDDEN))
def test_families_import_in_one_direction(family: str) -> None:
    graph = _graph("dockrion_runtime")
    wrong = [
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module == family or module.startswith(family + ".")
        for target in targets
        if target.startswith(FORBIDDEN[family])
        and target not in LEAF_ALLOWED.get(family, set())
        and not (target == family or target.startswith(family + "."))
    ]
    assert wrong == []
