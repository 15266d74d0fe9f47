"""What an `agent.entrypoint` names, told from the module's source without importing it.

An entrypoint is either a factory (a function or class called once at start-up, whose
result is served) or an object served as it is (a compiled LangGraph graph, a LangChain
runnable: `graph = builder.compile()`, what `langgraph.json` points at). Validation runs
in CI, where importing agent code could load models, read keys or open connections, so
this reads the module's source with `ast` and never executes it; the runtime decides for
certain when it loads the agent.
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["entrypoint_kind"]

_SHOWN = 60  # characters of an assigned expression quoted back


def entrypoint_kind(target: str, base_dir: Path) -> str:
    """A short phrase on what `module:name` is, e.g. `a factory (def build)`, `an object
    (graph = builder.compile())`; or why it cannot be told without importing."""
    module, _, name = target.partition(":")
    source = _module_file(module, base_dir)
    if source is None:
        return "module not found beside the Dockfile; checked when served"
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
    except (OSError, SyntaxError, ValueError) as exc:
        return f"{source.name} cannot be read ({type(exc).__name__}); checked when served"
    kind = None
    for node in tree.body:  # the last binding at module level wins, as at import
        found = _binding(node, name)
        if found is not None:
            kind = found
    return kind or f"no {name!r} at the top level of {source.name}; checked when served"


def _module_file(module: str, base_dir: Path) -> Path | None:
    base = base_dir.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _binding(node: ast.stmt, name: str) -> str | None:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
        return f"a factory (def {name}), called once at start-up"
    if isinstance(node, ast.ClassDef) and node.name == name:
        return f"a factory (class {name}), called once at start-up"
    value: ast.expr | None = None
    if isinstance(node, ast.Assign) and any(_names(t, name) for t in node.targets):
        value = node.value
    elif isinstance(node, ast.AnnAssign) and _names(node.target, name):
        value = node.value
    if value is not None:
        text = ast.unparse(value)
        text = text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
        if isinstance(value, ast.Lambda):
            return f"a factory ({name} = {text}), called once at start-up"
        if isinstance(value, ast.Call):
            return f"an object ({name} = {text}), served as it is"
        return f"bound to {text}; a factory or an object, told when served"
    if isinstance(node, ast.Import | ast.ImportFrom):
        for alias in node.names:
            if (alias.asname or alias.name.split(".")[0]) == name:
                origin = (node.module or ".") if isinstance(node, ast.ImportFrom) else alias.name
                return f"imported from {origin}; a factory or an object, told when served"
    return None


def _names(target: ast.expr, name: str) -> bool:
    if isinstance(target, ast.Name):
        return target.id == name
    if isinstance(target, ast.Tuple | ast.List):
        return any(_names(element, name) for element in target.elts)
    return False
