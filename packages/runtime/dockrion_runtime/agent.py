"""Loading the user's agent from a Dockfile and calling it without blocking the loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockrion_events import EventsFilter, StreamContext, context_scope
from dockrion_schema import DockSpec

__all__ = [
    "Agent",
    "AgentLoadError",
    "InvalidOutputError",
    "emit_chunk",
    "import_target",
    "load_agent",
]


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

    def __init__(
        self,
        call: Callable[..., Any],
        *,
        wants_context: bool,
        target: str,
        stream: Callable[..., Any] | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self._call = call
        self._executor = executor
        self._stream = stream
        self._wants_context = wants_context
        self._is_async = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
            getattr(call, "__call__", None)  # noqa: B004 - async callable objects
        )
        self.target = target

    async def invoke(self, payload: Any, context: StreamContext | None) -> Any:
        if self._stream is not None and context is not None:
            with context_scope(context):
                return await self._invoke_stream(payload, context)
        args = (payload, context) if self._wants_context else (payload,)
        with context_scope(context):
            if self._is_async:
                return await self._call(*args)
            result = await self.in_thread(self._call, *args)
            if inspect.isawaitable(result):
                return await result
            return result

    async def in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run sync agent code in a worker thread, with this task's contextvars (so
        get_current_context() works there); the loop stays free. The runtime's pool is
        large: each running sync agent holds a thread for its whole run."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(
            self._executor, functools.partial(context.run, function, *args)
        )

    async def _invoke_stream(self, payload: Any, context: StreamContext) -> Any:
        """Entrypoint runners with `astream`/`stream`: each chunk becomes an event; the
        output is the `{"type": "result", "data": ...}` chunk."""
        stream = self._stream
        assert stream is not None
        result: list[Any] = []
        produced = stream(payload)
        if hasattr(produced, "__aiter__"):
            async for chunk in produced:
                await emit_chunk(context, chunk, result)
        else:

            def consume() -> None:
                for chunk in produced:
                    _emit_chunk_sync(context, chunk, result)

            await self.in_thread(consume)
        if not result:
            raise InvalidOutputError(
                f"{self.target}: stream() ended without a {{'type': 'result', 'data': ...}} chunk"
            )
        return result[-1]


class InvalidOutputError(Exception):
    code = "INVALID_OUTPUT"


_CHUNK_FIELDS = {
    "token": ("content", "finish_reason"),
    "progress": ("step", "progress", "message"),
    "checkpoint": ("name", "data"),
    "step": ("node_name", "duration_ms", "input_keys", "output_keys"),
}


def _chunk_call(chunk: Any, result: list[Any]) -> tuple[str, dict[str, Any]] | None:
    """What to emit for one streamed chunk: (method suffix, arguments), or None."""
    if isinstance(chunk, str):
        return "token", {"content": chunk}
    if not isinstance(chunk, dict):
        return "token", {"content": str(chunk)}
    kind = chunk.get("type")
    if kind == "result":
        result.append(chunk.get("data"))
        return None
    if kind == "step" and "node_name" not in chunk and "node" in chunk:
        chunk = {**chunk, "node_name": chunk["node"]}
    if kind in _CHUNK_FIELDS:
        names = _CHUNK_FIELDS[kind]
        return str(kind), {name: chunk[name] for name in names if name in chunk}
    if kind == "custom":
        return "custom", {
            "event_type": chunk.get("event_type", "custom"),
            "data": chunk.get("data"),
        }
    return None


async def emit_chunk(context: StreamContext, chunk: Any, result: list[Any]) -> None:
    """Emit one streamed chunk as its event (`result` collects `{"type": "result"}` data)."""
    call = _chunk_call(chunk, result)
    if call is None:
        return
    kind, arguments = call
    if kind == "token":
        await context.emit_token(**arguments)
    elif kind == "progress":
        await context.emit_progress(**arguments)
    elif kind == "checkpoint":
        await context.checkpoint(**arguments)
    elif kind == "step":
        await context.emit_step(**arguments)
    else:
        await context.emit(arguments["event_type"], arguments["data"])


def _emit_chunk_sync(context: StreamContext, chunk: Any, result: list[Any]) -> None:
    call = _chunk_call(chunk, result)
    if call is None:
        return
    kind, arguments = call
    if kind == "token":
        context.sync_emit_token(**arguments)
    elif kind == "progress":
        context.sync_emit_progress(**arguments)
    elif kind == "checkpoint":
        context.sync_checkpoint(**arguments)
    elif kind == "step":
        context.sync_emit_step(**arguments)
    else:
        context.sync_emit(arguments["event_type"], arguments["data"])


def load_agent(
    spec: DockSpec,
    base_dir: Path,
    executor: concurrent.futures.Executor | None = None,
    events_filter: EventsFilter | None = None,
) -> Agent:
    """Handler mode: the callable itself. Entrypoint mode: the factory's result, called once
    (a compiled LangGraph graph with `framework: langgraph`)."""
    config = spec.agent
    target = config.target
    loaded = import_target(target, base_dir)
    if config.mode == "handler":
        if not callable(loaded):
            raise AgentLoadError(f"{target!r} is a {type(loaded).__name__}, not a callable")
        return Agent(loaded, wants_context=_wants_context(loaded), target=target, executor=executor)
    try:
        runner = loaded()
    except Exception as exc:
        raise AgentLoadError(f"factory {target!r} failed: {type(exc).__name__}: {exc}") from exc
    if config.framework == "langgraph" and hasattr(runner, "astream"):
        from .langgraph_adapter import LangGraphAgent

        return LangGraphAgent(runner, target=target, events_filter=events_filter or EventsFilter())
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
        executor=executor,
    )
