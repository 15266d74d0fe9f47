"""Loading the Dockfile's agent: import the module relative to the Dockfile's folder, then
the handler itself, or the runner an entrypoint names (an object served as it is, or a
factory that builds it)."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockrion_events import EventsFilter
from dockrion_schema import DockSpec

from ..errors import VERBOSE_HINT
from .base import Agent, AgentLoadError
from .worker_threads import AgentThreads

__all__ = ["import_target", "load_agent"]


def import_target(target: str, base_dir: Path) -> Any:
    """The object named by `module:attribute`, importing the module from `base_dir` first."""
    module_name, _, attribute = target.partition(":")
    folder = str(base_dir.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise AgentLoadError(
            f"cannot import module {module_name!r} for {target!r} (looked in {folder} and "
            f"sys.path): {exc}"
        ) from exc
    except Exception as exc:
        failed = f"importing {module_name!r} failed: {type(exc).__name__}"
        raise AgentLoadError(f"{failed}: {exc}", _see_log(failed)) from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise AgentLoadError(
            f"module {module_name!r} has no attribute {attribute!r} (from {target!r})"
        ) from None


def _see_log(failed: str) -> str:
    return f"{failed}; the server log has the details. {VERBOSE_HINT}"


def _wants_context(function: Callable[..., Any]) -> bool:
    """A handler takes the context when a parameter after the payload is named `context`
    or annotated `StreamContext`."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    for parameter in parameters[1:]:
        annotation = parameter.annotation
        name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if parameter.name == "context" or "StreamContext" in str(name):
            return True
    return False


def _is_runner(value: Any) -> bool:
    """An entrypoint that is the agent itself, not a factory: an object (not a function or
    a class) with `invoke` or `ainvoke`, such as a compiled LangGraph graph or a LangChain
    runnable."""
    if isinstance(value, type) or inspect.isroutine(value):
        return False
    return callable(getattr(value, "ainvoke", None)) or callable(getattr(value, "invoke", None))


def load_agent(
    spec: DockSpec,
    base_dir: Path,
    threads: AgentThreads | None = None,
    events_filter: EventsFilter | None = None,
) -> Agent:
    """Handler mode: the callable itself. Entrypoint mode: the object it names when that
    has `invoke`/`ainvoke` (a compiled LangGraph graph, a LangChain runnable), else the
    result of calling it once (a factory)."""
    config = spec.agent
    target = config.target
    loaded = import_target(target, base_dir)
    if config.mode == "handler":
        if not callable(loaded):
            raise AgentLoadError(f"{target!r} is a {type(loaded).__name__}, not a callable")
        return Agent(loaded, wants_context=_wants_context(loaded), target=target, threads=threads)
    if _is_runner(loaded):
        runner = loaded  # an object served as it is: a compiled graph, a runnable
    elif callable(loaded):
        try:
            runner = loaded()
        except Exception as exc:
            failed = f"factory {target!r} failed: {type(exc).__name__}"
            raise AgentLoadError(f"{failed}: {exc}", _see_log(failed)) from exc
    else:
        raise AgentLoadError(
            f"entrypoint {target!r} is a {type(loaded).__name__}: neither a factory (a "
            "function returning the agent) nor an object with invoke() or ainvoke()"
        )
    if config.framework == "langgraph" and hasattr(runner, "astream"):
        from .langgraph_agent import LangGraphAgent

        return LangGraphAgent(runner, target=target, events_filter=events_filter or EventsFilter())
    if config.framework == "langchain" and hasattr(runner, "astream_events"):
        from .langchain_agent import LangChainAgent

        return LangChainAgent(runner, target=target)
    method = getattr(runner, "ainvoke", None) or getattr(runner, "invoke", None)
    if method is None or not callable(method):
        raise AgentLoadError(
            f"factory {target!r} returned {type(runner).__name__}, which has no invoke() "
            "or ainvoke() method"
        )
    stream = getattr(runner, "astream", None) or getattr(runner, "stream", None)
    return Agent(
        method,
        wants_context=_wants_context(method),
        target=target,
        stream=stream if callable(stream) else None,
        threads=threads,
    )
