"""Loading the user's agent from a Dockfile and calling it without blocking the loop."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockrion_events import StreamContext, context_scope
from dockrion_schema import DockSpec

__all__ = ["Agent", "AgentLoadError", "import_target", "load_agent"]


class AgentLoadError(Exception):
    """The agent module or callable cannot be loaded; the message says which and why."""

    code = "AGENT_LOAD_ERROR"


def import_target(target: str, base_dir: Path) -> Any:
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
        raise AgentLoadError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise AgentLoadError(
            f"module {module_name!r} has no attribute {attribute!r} (from {target!r})"
        ) from None


def _wants_context(function: Callable[..., Any]) -> bool:
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


class Agent:
    """A loaded agent: `await agent.invoke(payload, context)` runs it to its output."""

    def __init__(self, call: Callable[..., Any], *, wants_context: bool, target: str) -> None:
        self._call = call
        self._wants_context = wants_context
        self._is_async = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
            getattr(call, "__call__", None)  # noqa: B004 - async callable objects
        )
        self.target = target

    async def invoke(self, payload: Any, context: StreamContext | None) -> Any:
        args = (payload, context) if self._wants_context else (payload,)
        with context_scope(context):
            if self._is_async:
                return await self._call(*args)
            # Sync agents run in a worker thread (asyncio.to_thread copies the contextvars,
            # so get_current_context() works there too); the loop stays free.
            result = await asyncio.to_thread(self._call, *args)
            if inspect.isawaitable(result):
                return await result
            return result


def load_agent(spec: DockSpec, base_dir: Path) -> Agent:
    """Handler mode: the callable itself. Entrypoint mode: the factory's result, called once."""
    config = spec.agent
    target = config.target
    loaded = import_target(target, base_dir)
    if config.mode == "handler":
        if not callable(loaded):
            raise AgentLoadError(f"{target!r} is a {type(loaded).__name__}, not a callable")
        return Agent(loaded, wants_context=_wants_context(loaded), target=target)
    try:
        runner = loaded()
    except Exception as exc:
        raise AgentLoadError(f"factory {target!r} failed: {type(exc).__name__}: {exc}") from exc
    method = getattr(runner, "ainvoke", None) or getattr(runner, "invoke", None)
    if method is None or not callable(method):
        raise AgentLoadError(
            f"factory {target!r} returned {type(runner).__name__}, which has no invoke() "
            "or ainvoke() method"
        )
    return Agent(method, wants_context=_wants_context(method), target=target)
