"""StreamContext: how agent code emits events, from async code or from worker threads.

Async code awaits `emit_*`; sync code (a handler in a worker thread) calls `sync_emit_*`.
An `emit_*` called with no event loop running in its thread (a plain `def` handler
forgetting the `sync_` prefix) raises `SyncEmitRequiredError` at the call, naming the
`sync_emit_*` to use, instead of making a coroutine nothing awaits (an event never sent).
Either way the event is numbered at once, in emit order, and reaches the run's log in
batches. Events a run's filter drops take no number. After the terminal event every emit
raises `StreamClosedError`; after a cancellation the next one raises `RunCancelledError`,
so a sync agent stops at its next emit.

A server that runs agent code sets the context's `redaction` (everything an event carries
is rewritten before it is logged) and reserves the terminal events to itself
(`reserve_terminal_events`): agent code returns or raises, and the server ends the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from . import _builders as builders
from ._batch_stage import BatchStage
from ._staging import DirectStage, Stage
from .auth_context import AuthContext
from .errors import SyncEmitRequiredError, TerminalEventError
from .filter import EventsFilter, Redaction, TokenFilter
from .models import MANDATORY_EVENT_TYPES, BaseEvent
from .runs import RunStatus
from .sinks import RunLogSink, StreamingSink

__all__ = ["Redaction", "RunEnding", "StreamContext", "TokenFilter"]

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


class StreamContext:
    """Emit events for one run. Async methods for async code, `sync_*` for sync code.

    With a bus (an `EventBus`), events go to the run's log. With `queue_mode=True` they are
    offered to `streaming_sink` (a `StreamingSink`), and kept in the context's own queue
    when it declines or there is none, for `drain_queued_events()`.
    """

    def __init__(
        self,
        run_id: str,
        bus: RunLogSink | None = None,
        agent_name: str | None = None,
        framework: str | None = None,
        queue_mode: bool = False,
        events_filter: EventsFilter | None = None,
        streaming_sink: StreamingSink | None = None,
        *,
        max_pending: int = 10_000,
        max_pending_bytes: int | None = None,
        finish_patience: float = 60.0,
    ) -> None:
        self._stage: Stage
        self._direct: DirectStage | None = None  # queue mode
        if queue_mode:
            self._stage = self._direct = DirectStage(run_id, streaming_sink)
        elif bus is None:
            raise ValueError("StreamContext needs a bus (or queue_mode=True)")
        else:
            self._stage = BatchStage(
                run_id,
                bus,
                max_pending=max_pending,
                max_pending_bytes=max_pending_bytes,
                finish_patience=finish_patience,
            )
        self._run_id = run_id
        self._thread_id: str | None = None
        self._auth = AuthContext()
        self._tool_check: Callable[[str], bool] | None = None
        self._redaction: Redaction | None = None
        self._ending: RunEnding | None = None
        self._bus = bus
        self._agent_name = agent_name
        self._framework = framework
        self._queue_mode = queue_mode
        self._events_filter = events_filter
        self._streaming_sink = streaming_sink
        with contextlib.suppress(RuntimeError):
            self.bind_loop(asyncio.get_running_loop())

    # --- properties --------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def thread_id(self) -> str | None:
        """The conversation this run continues (`?thread_id=`), or None."""
        return self._thread_id

    @thread_id.setter
    def thread_id(self, value: str | None) -> None:
        self._thread_id = value

    @property
    def auth(self) -> AuthContext:
        """Who started this run (anonymous when the server does not authenticate)."""
        return self._auth

    @auth.setter
    def auth(self, value: AuthContext) -> None:
        self._auth = value

    def is_tool_allowed(self, name: str) -> bool:
        """Whether the deployment's tool policy lets this run call tool `name` (every tool
        is allowed when the server sets no policy)."""
        return self._tool_check is None or self._tool_check(name)

    @property
    def tool_check(self) -> Callable[[str], bool] | None:
        return self._tool_check

    @tool_check.setter
    def tool_check(self, value: Callable[[str], bool] | None) -> None:
        self._tool_check = value

    @property
    def redaction(self) -> Redaction | None:
        """The server's redaction of this run's events (None: events go out as emitted)."""
        return self._redaction

    @redaction.setter
    def redaction(self, value: Redaction | None) -> None:
        self._redaction = value

    def reserve_terminal_events(self) -> RunEnding:
        """Keep `complete`, `error` and `cancelled` for the caller, the server that runs the
        agent: from now on `emit_complete`, `emit_error` and `emit_cancelled` raise
        `TerminalEventError`, and the returned `RunEnding` is the one way to end the run."""
        if self._ending is not None:
            raise RuntimeError(f"the terminal events of run '{self._run_id}' are reserved")
        self._ending = RunEnding(self)
        return self._ending

    def _reserved(self, method: str, instead: str) -> None:
        if self._ending is not None:
            raise TerminalEventError(
                f"{method}() is reserved to the server running this agent (run "
                f"'{self._run_id}'): {instead}"
            )

    def _redacted(self, build: builders.Build) -> builders.Build:
        redaction = self._redaction
        return build if redaction is None else builders.redacted(build, redaction.scrub)

    def _check_custom_name(self, name: str) -> None:
        """A custom event's name is its type on the wire (`custom:<name>`), which cannot be
        rewritten: a name that redaction would change is refused, without repeating it."""
        redaction = self._redaction
        if redaction is not None and redaction.scrub(name) != name:
            raise ValueError(
                "a custom event's name matches a redaction pattern; names are sent as "
                "they are, so the event was not emitted: put the value in its data"
            )

    async def _flush_tokens(self) -> None:
        # Before `complete` or `error` only: a cancelled run drops what the filter holds.
        if self._redaction is not None and not self.closed:
            held = self._redaction.flush()
            if held and self._allowed("token"):
                await self._stage.emit("token", builders.token(self._run_id, held, None, None))

    @property
    def sink(self) -> RunLogSink | None:
        """Where this context's events go (the bus), None in queue mode."""
        return self._bus

    @property
    def queue_mode(self) -> bool:
        return self._queue_mode

    @property
    def events_filter(self) -> EventsFilter | None:
        return self._events_filter

    @events_filter.setter
    def events_filter(self, value: EventsFilter | None) -> None:
        self._events_filter = value

    @property
    def streaming_sink(self) -> StreamingSink | None:
        return self._streaming_sink

    @property
    def cancelled(self) -> bool:
        return self._stage.cancel_reason is not None

    @property
    def closed(self) -> bool:
        return self._stage.closed_by is not None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that owns the sink; worker-thread emits are handed to it. Call it on
        that loop's thread (a context made inside the loop is bound already)."""
        self._stage.bind_loop(loop)

    # --- cancellation ------------------------------------------------------------------

    def cancel(self, reason: str | None = None) -> None:
        """Mark the run cancelled: the agent's next emit raises `RunCancelledError`."""
        self._stage.cancel(reason)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the cancelling thread) when the run is cancelled."""
        self._stage.on_cancel(callback)

    async def flush(self) -> None:
        """Wait until every event emitted so far is in the log."""
        await self._stage.flush()

    def _allowed(self, event_type: str, custom_name: str | None = None) -> bool:
        if self._events_filter is None or event_type in MANDATORY_EVENT_TYPES:
            return True
        if custom_name is not None:
            return self._events_filter.allows_custom(custom_name)
        return self._events_filter.is_allowed(event_type)

    # --- async emitters ----------------------------------------------------------------

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
        if self._redaction is not None:
            content = self._redaction.feed(content)
            if not content and finish_reason is None:
                return None  # held back until more text (or the end) shows what it is
            if node_name is not None:
                node_name = self._redaction.scrub(node_name)
        build = builders.token(self._run_id, content, finish_reason, node_name)
        return await self._stage.emit("token", build)

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

    async def _complete(
        self, output: Any, latency_seconds: float | None, metadata: dict[str, Any] | None
    ) -> BaseEvent:
        await self._flush_tokens()
        if self._redaction is not None:
            output = self._redaction.scrub(output)
            metadata = self._redaction.scrub(metadata) if metadata else metadata
        return await self._stage.finish(
            RunStatus.COMPLETED,
            "complete",
            builders.complete(self._run_id, output, latency_seconds, metadata),
            output=output,
        )

    async def _error(self, error: str, code: str, details: dict[str, Any] | None) -> BaseEvent:
        await self._flush_tokens()
        if self._redaction is not None:
            error = self._redaction.scrub(error, may_refuse=False)
            details = self._redaction.scrub(details, may_refuse=False) if details else details
        return await self._stage.finish(
            RunStatus.FAILED,
            "error",
            builders.error(self._run_id, error, code, details),
            error={"message": error, "code": code, "details": details},
        )

    async def _cancelled(self, reason: str | None) -> BaseEvent:
        if self._redaction is not None and reason:
            reason = self._redaction.scrub(reason, may_refuse=False)
        event = await self._stage.finish(
            RunStatus.CANCELLED, "cancelled", builders.cancelled(self._run_id, reason)
        )
        self.cancel(reason)
        return event

    # --- sync emitters (worker threads) ------------------------------------------------

    def sync_emit_progress(self, step: str, progress: float, message: str | None = None) -> bool:
        if not self._allowed("progress"):
            return False
        self._stage.stage(
            "progress", self._redacted(builders.progress(self._run_id, step, progress, message))
        )
        return True

    def sync_checkpoint(self, name: str, data: dict[str, Any] | None = None) -> bool:
        if not self._allowed("checkpoint"):
            return False
        self._stage.stage(
            "checkpoint", self._redacted(builders.checkpoint(self._run_id, name, data))
        )
        return True

    def sync_emit_token(
        self, content: str, finish_reason: str | None = None, *, node_name: str | None = None
    ) -> bool:
        if not self._allowed("token"):
            return False
        if self._redaction is not None:
            content = self._redaction.feed(content)
            if not content and finish_reason is None:
                return True  # held back until more text (or the end) shows what it is
            if node_name is not None:
                node_name = self._redaction.scrub(node_name)
        build = builders.token(self._run_id, content, finish_reason, node_name)
        self._stage.stage("token", build)
        return True

    def sync_emit_tool_call(
        self,
        name: str,
        arguments: Any = None,
        call_id: str | None = None,
        *,
        node_name: str | None = None,
    ) -> bool:
        if not self._allowed("tool_call"):
            return False
        build = builders.tool_call(self._run_id, name, arguments or {}, call_id, node_name)
        self._stage.stage("tool_call", self._redacted(build))
        return True

    def sync_emit_tool_result(
        self,
        call_id: str | None,
        name: str | None = None,
        content: Any = None,
        *,
        is_error: bool = False,
        node_name: str | None = None,
    ) -> bool:
        if not self._allowed("tool_result"):
            return False
        build = builders.tool_result(self._run_id, call_id, name, content, is_error, node_name)
        self._stage.stage("tool_result", self._redacted(build))
        return True

    def sync_emit_step(
        self,
        node_name: str,
        duration_ms: int | None = None,
        input_keys: list[str] | None = None,
        output_keys: list[str] | None = None,
    ) -> bool:
        if not self._allowed("step"):
            return False
        build = builders.step(self._run_id, node_name, duration_ms, input_keys, output_keys)
        self._stage.stage("step", self._redacted(build))
        return True

    def sync_emit(self, event_type: str, data: dict[str, Any] | None = None, **fields: Any) -> bool:
        name, build = builders.custom(self._run_id, event_type, data, fields)
        if not self._allowed("custom", name):
            return False
        self._check_custom_name(name)
        self._stage.stage(f"custom:{name}", self._redacted(build))
        return True

    def sync_emit_heartbeat(self) -> bool:
        """See `emit_heartbeat`: records nothing."""
        return False

    # --- queue mode ----------------------------------------------------------------------

    def drain_queued_events(self) -> list[BaseEvent]:
        """The events kept in queue mode, oldest first; empties the queue."""
        if self._direct is None:
            return []
        with self._direct.lock:
            return self._direct.queue.drain()

    def has_queued_events(self) -> bool:
        return self.queue_size() > 0

    def queue_size(self) -> int:
        return len(self._direct.queue) if self._direct is not None else 0

    def __repr__(self) -> str:
        return f"StreamContext(run_id={self._run_id!r}, next_sequence={self._stage.next_sequence})"


class RunEnding:
    """Ends a run whose terminal events a server reserved
    (`StreamContext.reserve_terminal_events`); the same rules as the `emit_*` methods
    (redaction, one terminal event)."""

    __slots__ = ("_context",)

    def __init__(self, context: StreamContext) -> None:
        self._context = context

    async def complete(
        self,
        output: Any,
        latency_seconds: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> BaseEvent:
        return await self._context._complete(output, latency_seconds, metadata)

    async def error(
        self, error: str, code: str = "INTERNAL_ERROR", details: dict[str, Any] | None = None
    ) -> BaseEvent:
        return await self._context._error(error, code, details)

    async def cancelled(self, reason: str | None = None) -> BaseEvent:
        return await self._context._cancelled(reason)
