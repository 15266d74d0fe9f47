"""StreamContext: how agent code emits events, from async code or from worker threads.

Async code awaits `emit_*`; sync code (a handler in a worker thread) calls `sync_emit_*`.
Either way the event is numbered at once, in emit order, and reaches the run's log in
batches. Events a run's filter drops take no number. After the terminal event every emit
raises `StreamClosedError`; after a cancellation the next one raises `RunCancelledError`,
so a sync agent stops at its next emit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from . import _builders as builders
from ._batch_stage import BatchStage
from ._staging import DirectStage, Stage
from .auth_context import AuthContext
from .filter import EventsFilter, TokenFilter
from .models import MANDATORY_EVENT_TYPES, BaseEvent
from .runs import RunStatus
from .sinks import RunLogSink, StreamingSink

__all__ = ["StreamContext", "TokenFilter"]


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
        self._token_filter: TokenFilter | None = None
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
    def token_filter(self) -> TokenFilter | None:
        return self._token_filter

    @token_filter.setter
    def token_filter(self, value: TokenFilter | None) -> None:
        self._token_filter = value

    async def _flush_tokens(self) -> None:
        # Before `complete` or `error` only: a cancelled run drops what the filter holds.
        if self._token_filter is not None and not self.closed:
            held = self._token_filter.flush()
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
        return await self._stage.emit("started", builders.started(self._run_id, name, kind))

    async def emit_progress(
        self, step: str, progress: float, message: str | None = None
    ) -> BaseEvent | None:
        if not self._allowed("progress"):
            return None
        build = builders.progress(self._run_id, step, progress, message)
        return await self._stage.emit("progress", build)

    async def checkpoint(self, name: str, data: dict[str, Any] | None = None) -> BaseEvent | None:
        if not self._allowed("checkpoint"):
            return None
        return await self._stage.emit("checkpoint", builders.checkpoint(self._run_id, name, data))

    async def emit_token(
        self, content: str, finish_reason: str | None = None, *, node_name: str | None = None
    ) -> BaseEvent | None:
        if not self._allowed("token"):
            return None
        if self._token_filter is not None:
            content = self._token_filter.feed(content)
            if not content and finish_reason is None:
                return None  # held back until more text (or the end) shows what it is
        build = builders.token(self._run_id, content, finish_reason, node_name)
        return await self._stage.emit("token", build)

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
        return await self._stage.emit("tool_call", build)

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
        return await self._stage.emit("tool_result", build)

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
        return await self._stage.emit("step", build)

    async def emit(
        self, event_type: str, data: dict[str, Any] | None = None, **fields: Any
    ) -> BaseEvent | None:
        """A custom event: `emit("fraud_check", score=0.2)` goes out as `custom:fraud_check`."""
        name, build = builders.custom(self._run_id, event_type, data, fields)
        if not self._allowed("custom", name):
            return None
        return await self._stage.emit(f"custom:{name}", build)

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
        await self._flush_tokens()
        return await self._stage.finish(
            RunStatus.COMPLETED,
            "complete",
            builders.complete(self._run_id, output, latency_seconds, metadata),
            output=output,
        )

    async def emit_error(
        self, error: str, code: str = "INTERNAL_ERROR", details: dict[str, Any] | None = None
    ) -> BaseEvent:
        await self._flush_tokens()
        return await self._stage.finish(
            RunStatus.FAILED,
            "error",
            builders.error(self._run_id, error, code, details),
            error={"message": error, "code": code, "details": details},
        )

    async def emit_cancelled(self, reason: str | None = None) -> BaseEvent:
        event = await self._stage.finish(
            RunStatus.CANCELLED, "cancelled", builders.cancelled(self._run_id, reason)
        )
        self.cancel(reason)
        return event

    # --- sync emitters (worker threads) ------------------------------------------------

    def sync_emit_progress(self, step: str, progress: float, message: str | None = None) -> bool:
        if not self._allowed("progress"):
            return False
        self._stage.stage("progress", builders.progress(self._run_id, step, progress, message))
        return True

    def sync_checkpoint(self, name: str, data: dict[str, Any] | None = None) -> bool:
        if not self._allowed("checkpoint"):
            return False
        self._stage.stage("checkpoint", builders.checkpoint(self._run_id, name, data))
        return True

    def sync_emit_token(
        self, content: str, finish_reason: str | None = None, *, node_name: str | None = None
    ) -> bool:
        if not self._allowed("token"):
            return False
        if self._token_filter is not None:
            content = self._token_filter.feed(content)
            if not content and finish_reason is None:
                return True  # held back until more text (or the end) shows what it is
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
        self._stage.stage("tool_call", build)
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
        self._stage.stage("tool_result", build)
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
        self._stage.stage("step", build)
        return True

    def sync_emit(self, event_type: str, data: dict[str, Any] | None = None, **fields: Any) -> bool:
        name, build = builders.custom(self._run_id, event_type, data, fields)
        if not self._allowed("custom", name):
            return False
        self._stage.stage(f"custom:{name}", build)
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
