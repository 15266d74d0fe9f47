"""The async emit surface of `StreamContext`: what async agent code awaits. An `emit_*`
called with no event loop running in its thread raises `SyncEmitRequiredError`, naming
the `sync_emit_*` to use."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from . import _builders as builders
from ._emit_guards import EmitGuards
from .errors import SyncEmitRequiredError
from .models import BaseEvent

__all__ = ["AsyncEmitters"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _awaited(
    sync_name: str,
) -> Callable[[Callable[_P, Coroutine[Any, Any, _R]]], Callable[_P, Coroutine[Any, Any, _R]]]:
    """An async emitter that refuses to be called from a thread with no running loop,
    where the coroutine it returns could never be awaited."""

    def decorate(
        method: Callable[_P, Coroutine[Any, Any, _R]],
    ) -> Callable[_P, Coroutine[Any, Any, _R]]:
        name = method.__name__

        @functools.wraps(method)
        def call(*args: _P.args, **kwargs: _P.kwargs) -> Coroutine[Any, Any, _R]:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                raise SyncEmitRequiredError(
                    f"context.{name}() is async and this code cannot await it (no event "
                    f"loop runs in this thread: a plain 'def' handler?), so the event would "
                    f"never be sent. In a 'def' handler call context.{sync_name}(...) with "
                    f"the same arguments; in an 'async def' handler write "
                    f"'await context.{name}(...)'."
                ) from None
            return method(*args, **kwargs)

        return call

    return decorate


class AsyncEmitters(EmitGuards):
    """The `emit_*` methods (and `checkpoint`) of `StreamContext`."""

    async def emit_started(
        self, agent_name: str | None = None, framework: str | None = None
    ) -> BaseEvent:
        name, kind = agent_name or self._agent_name, framework or self._framework
        return await self._stage.emit(
            "started", self._redacted(builders.started(self._run_id, name, kind))
        )

    @_awaited("sync_emit_progress")
    async def emit_progress(
        self, step: str, progress: float, message: str | None = None
    ) -> BaseEvent | None:
        if not self._allowed("progress"):
            return None
        build = builders.progress(self._run_id, step, progress, message)
        return await self._stage.emit("progress", self._redacted(build))

    @_awaited("sync_checkpoint")
    async def checkpoint(self, name: str, data: dict[str, Any] | None = None) -> BaseEvent | None:
        if not self._allowed("checkpoint"):
            return None
        return await self._stage.emit(
            "checkpoint", self._redacted(builders.checkpoint(self._run_id, name, data))
        )

    @_awaited("sync_emit_token")
    async def emit_token(
        self, content: str, finish_reason: str | None = None, *, node_name: str | None = None
    ) -> BaseEvent | None:
        if not self._allowed("token"):
            return None
        build = self._token(content, finish_reason, node_name)
        return None if build is None else await self._stage.emit("token", build)

    @_awaited("sync_emit_tool_call")
    async def emit_tool_call(
        self,
        name: str,
        arguments: Any = None,
        call_id: str | None = None,
        *,
        node_name: str | None = None,
    ) -> BaseEvent | None:
        """The model asked for tool `name` with `arguments` (the call's id when it has one)."""
        if not self._allowed("tool_call"):
            return None
        build = builders.tool_call(self._run_id, name, arguments or {}, call_id, node_name)
        return await self._stage.emit("tool_call", self._redacted(build))

    @_awaited("sync_emit_tool_result")
    async def emit_tool_result(
        self,
        call_id: str | None,
        name: str | None = None,
        content: Any = None,
        *,
        is_error: bool = False,
        node_name: str | None = None,
    ) -> BaseEvent | None:
        """Tool `name` answered the call `call_id` with `content`."""
        if not self._allowed("tool_result"):
            return None
        build = builders.tool_result(self._run_id, call_id, name, content, is_error, node_name)
        return await self._stage.emit("tool_result", self._redacted(build))

    @_awaited("sync_emit_step")
    async def emit_step(
        self,
        node_name: str,
        duration_ms: int | None = None,
        input_keys: list[str] | None = None,
        output_keys: list[str] | None = None,
    ) -> BaseEvent | None:
        if not self._allowed("step"):
            return None
        build = builders.step(self._run_id, node_name, duration_ms, input_keys, output_keys)
        return await self._stage.emit("step", self._redacted(build))

    @_awaited("sync_emit")
    async def emit(
        self, event_type: str, data: dict[str, Any] | None = None, **fields: Any
    ) -> BaseEvent | None:
        """A custom event: `emit("fraud_check", score=0.2)` goes out as `custom:fraud_check`."""
        name, build = builders.custom(self._run_id, event_type, data, fields)
        if not self._allowed("custom", name):
            return None
        self._check_custom_name(name)
        return await self._stage.emit(f"custom:{name}", self._redacted(build))

    async def emit_heartbeat(self) -> None:
        """Accepted for compatibility; heartbeats are sent by the server while a stream is
        idle and are never stored, so this records nothing."""
        return None

    async def emit_complete(
        self,
        output: Any,
        latency_seconds: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> BaseEvent:
        """End the run with `complete` (not under a server: it ends runs itself)."""
        self._reserved("emit_complete", "return the output from the agent instead")
        return await self._complete(output, latency_seconds, metadata)

    async def emit_error(
        self, error: str, code: str = "INTERNAL_ERROR", details: dict[str, Any] | None = None
    ) -> BaseEvent:
        """End the run with `error` (not under a server: it ends runs itself)."""
        self._reserved("emit_error", "raise an exception from the agent instead")
        return await self._error(error, code, details)

    async def emit_cancelled(self, reason: str | None = None) -> BaseEvent:
        """End the run with `cancelled` (not under a server: it ends runs itself)."""
        self._reserved(
            "emit_cancelled",
            "the run is cancelled by its caller (DELETE, a "
            "client that leaves, max_run_duration); return or raise instead",
        )
        return await self._cancelled(reason)
