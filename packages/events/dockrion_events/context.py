"""StreamContext: how agent code emits events, from async code or from worker threads.

Sequence numbers are assigned when an event is emitted, under one lock, so the log order is
the emit order whatever thread emits. Events from worker threads are handed to the event
loop in batches: the first event of a batch schedules one wake-up, the following ones just
join it. A producer that gets far ahead of the loop waits (bounded memory); one whose run
was cancelled gets `RunCancelledError` from its next emit, so the agent stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

from .errors import BackendConnectionError, RunCancelledError, RunFinishedError, StreamClosedError
from .filter import EventsFilter, custom_event_name
from .models import (
    CONFIGURABLE_EVENT_TYPES,
    MANDATORY_EVENT_TYPES,
    BaseEvent,
    CancelledEvent,
    CheckpointEvent,
    CompleteEvent,
    ErrorEvent,
    ProgressEvent,
    StartedEvent,
    StepEvent,
    TokenEvent,
    new_event_id,
)
from .record import EventRecord
from .runs import Run, RunStatus
from .streaming_backends import StreamingBackend

__all__ = [
    "EventSink",
    "StreamContext",
    "context_scope",
    "get_current_context",
    "set_current_context",
]

log = logging.getLogger("dockrion.events")
_INLINE_FLUSH = 512
_RESERVED = frozenset({"id", "type", "run_id", "sequence", "timestamp"})
_current: ContextVar[StreamContext | None] = ContextVar("dockrion_stream_context", default=None)


class EventSink(Protocol):
    """Where a context's events go: an `EventBus` (or anything with the same two methods)."""

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None: ...

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        build: Callable[[int], BaseEvent],
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> tuple[Run, EventRecord]: ...


def get_current_context() -> StreamContext | None:
    """The context of the run this code executes for, or None outside a run."""
    return _current.get()


def set_current_context(context: StreamContext | None) -> None:
    _current.set(context)


@contextlib.contextmanager
def context_scope(context: StreamContext | None) -> Iterator[StreamContext | None]:
    """Make `context` current inside the block; the previous one comes back after."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


class StreamContext:
    """Emit events for one run. Async methods for async code, `sync_*` for sync code."""

    def __init__(
        self,
        run_id: str,
        bus: EventSink | None = None,
        agent_name: str | None = None,
        framework: str | None = None,
        queue_mode: bool = False,
        events_filter: EventsFilter | None = None,
        streaming_backend: StreamingBackend | None = None,
        *,
        max_pending: int = 10_000,
        finish_patience: float = 60.0,
    ) -> None:
        if bus is None and not queue_mode:
            raise ValueError("StreamContext needs a bus (or queue_mode=True)")
        self._run_id = run_id
        self._sink = bus
        self._agent_name = agent_name
        self._framework = framework
        self._queue_mode = queue_mode
        self._events_filter = events_filter
        self._streaming_backend = streaming_backend
        self._max_pending = max_pending
        self._finish_patience = finish_patience
        self._retry_delay = 0.0
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._next_sequence = 0
        self._pending: list[EventRecord] = []
        self._wakeup_scheduled = False
        self._closed_by: str | None = None
        self._cancel_reason: str | None = None
        self._failure: BaseException | None = None
        self._queue: list[BaseEvent] = []
        self._cancel_callbacks: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Future[None]] = set()
        self._flush_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        with contextlib.suppress(RuntimeError):
            self.bind_loop(asyncio.get_running_loop())

    # --- properties --------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def sink(self) -> EventSink | None:
        """Where this context's events go (the bus), None in queue mode."""
        return self._sink

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
    def streaming_backend(self) -> StreamingBackend | None:
        return self._streaming_backend

    @property
    def cancelled(self) -> bool:
        return self._cancel_reason is not None

    @property
    def closed(self) -> bool:
        return self._closed_by is not None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that owns the sink; worker-thread emits are handed to it."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    # --- cancellation ------------------------------------------------------------------

    def cancel(self, reason: str | None = None) -> None:
        """Mark the run cancelled: the agent's next emit raises `RunCancelledError`."""
        callbacks: list[Callable[[], None]] = []
        with self._lock:
            if self._cancel_reason is None:
                self._cancel_reason = reason or "cancelled"
                self._closed_by = self._closed_by or "cancelled"
                callbacks, self._cancel_callbacks = self._cancel_callbacks, []
            self._drained.notify_all()
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the cancelling thread) when the run is cancelled."""
        with self._lock:
            if self._cancel_reason is None:
                self._cancel_callbacks.append(callback)
                return
        callback()

    # --- the core: stage an event, flush batches ---------------------------------------

    def _allowed(self, event_type: str, custom_name: str | None = None) -> bool:
        if self._events_filter is None or event_type in MANDATORY_EVENT_TYPES:
            return True
        if custom_name is not None:
            return self._events_filter.allows_custom(custom_name)
        return self._events_filter.is_allowed(event_type)

    def _check_open(self, event_type: str) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        if self._cancel_reason is not None:
            raise RunCancelledError(
                f"run '{self._run_id}' was cancelled ({self._cancel_reason}); stop the agent"
            )
        if self._closed_by is not None:
            raise StreamClosedError(
                f"run '{self._run_id}' already ended with '{self._closed_by}'; "
                f"cannot emit '{event_type}' after the terminal event"
            )

    def _stage(
        self, event_type: str, build: Callable[[int], BaseEvent], *, inline: bool = False
    ) -> BaseEvent:
        """Number, serialize and queue one event; safe from any thread. With `inline`, the
        caller (an async emit on the loop) flushes right after, so no wake-up is scheduled."""
        if self._queue_mode:
            return self._stage_queue(event_type, build)
        wake = False
        with self._lock:
            self._check_open(event_type)
            if threading.get_ident() != self._loop_thread:
                while len(self._pending) >= self._max_pending and self._closed_by is None:
                    self._drained.wait(0.5)
                self._check_open(event_type)
            event = build(self._next_sequence)
            self._pending.append(EventRecord.from_event(event))
            self._next_sequence += 1
            if not inline and not self._wakeup_scheduled:
                self._wakeup_scheduled = wake = True
        if wake:
            self._wake()
        return event

    def _stage_queue(self, event_type: str, build: Callable[[int], BaseEvent]) -> BaseEvent:
        with self._lock:
            self._check_open(event_type)
            event = build(self._next_sequence)
            backend = self._streaming_backend
            if backend is None or not _safe_emit(backend, event):
                self._queue.append(event)
            self._next_sequence += 1
        return event

    def _wake(self) -> None:
        loop = self._loop
        if loop is None:
            raise RuntimeError(
                "StreamContext is not bound to an event loop; create it inside the loop or "
                "call bind_loop() first"
            )
        if threading.get_ident() == self._loop_thread:
            loop.call_soon(self._start_flush)
        else:
            loop.call_soon_threadsafe(self._start_flush)

    def _start_flush(self) -> None:
        task = asyncio.ensure_future(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
                self._wakeup_scheduled = False
                self._drained.notify_all()
            if not batch:
                return
            assert self._sink is not None
            try:
                await self._sink.append(self._run_id, batch)
            except RunFinishedError as exc:
                self.cancel(f"run already {exc.status}")
            except BackendConnectionError as exc:
                # Keep the events (in order) and try again later; the bounded buffer makes a
                # producer wait rather than grow memory while the backend is away.
                with self._lock:
                    self._pending[:0] = batch
                self._retry_later(exc)
            except Exception as exc:
                self._failure = exc
            else:
                self._retry_delay = 0.0

    def _retry_later(self, exc: BaseException) -> None:
        if self._retry_delay == 0.0:
            log.warning("run %s: backend unavailable, buffering events: %s", self._run_id, exc)
        self._retry_delay = min(2.0, max(0.05, self._retry_delay * 2))
        if self._loop is not None:
            self._loop.call_later(self._retry_delay, self._start_flush)

    async def flush(self) -> None:
        """Wait until every event emitted so far is in the log."""
        if not self._queue_mode:
            await self._flush()

    async def _flush_all(self, patience: float) -> None:
        """Flush, waiting out a backend outage for up to `patience` seconds."""
        deadline = time.monotonic() + patience
        await self._flush()
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(max(self._retry_delay, 0.05))
            await self._flush()
        if self._pending:
            raise BackendConnectionError(
                f"run '{self._run_id}': {len(self._pending)} events could not be stored "
                f"within {patience:g}s",
                "unknown",
            )

    async def _emit(self, event_type: str, build: Callable[[int], BaseEvent]) -> BaseEvent:
        """Queue the event; it is written as soon as the agent yields to the loop, together
        with whatever else is ready (one append per batch, not per event). A producer that
        never yields is flushed inline every `_INLINE_FLUSH` events."""
        event = self._stage(event_type, build)
        if not self._queue_mode and len(self._pending) >= _INLINE_FLUSH:
            await self._flush()
            if self._failure is not None or self._cancel_reason is not None:
                self._check_open(event_type)
        return event

    async def _finish(
        self,
        status: RunStatus,
        event_type: str,
        build: Callable[[int], BaseEvent],
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> BaseEvent:
        if not self._queue_mode:
            await self._flush_all(self._finish_patience)
        with self._lock:
            self._check_open(event_type)
            self._closed_by = event_type
            self._drained.notify_all()
        if self._queue_mode:
            event = build(self._next_sequence)
            self._queue.append(event)
            return event
        assert self._sink is not None
        built: list[BaseEvent] = []

        def keep(sequence: int) -> BaseEvent:
            built.append(build(sequence))
            return built[-1]

        deadline = time.monotonic() + self._finish_patience
        while True:
            try:
                await self._sink.finish(self._run_id, status, keep, output=output, error=error)
            except RunFinishedError as exc:
                self.cancel(f"run already {exc.status}")
                raise
            except BackendConnectionError as exc:
                if time.monotonic() >= deadline:
                    raise
                self._retry_delay = min(2.0, max(0.05, self._retry_delay * 2))
                log.warning("run %s: cannot store '%s' yet: %s", self._run_id, event_type, exc)
                await asyncio.sleep(self._retry_delay)
                continue
            return built[-1]

    # --- async emitters ----------------------------------------------------------------

    async def emit_started(
        self, agent_name: str | None = None, framework: str | None = None
    ) -> BaseEvent:
        name, kind = agent_name or self._agent_name, framework or self._framework
        return await self._emit(
            "started",
            lambda seq: StartedEvent(
                run_id=self._run_id, sequence=seq, agent_name=name, framework=kind
            ),
        )

    async def emit_progress(
        self, step: str, progress: float, message: str | None = None
    ) -> BaseEvent | None:
        if not self._allowed("progress"):
            return None
        return await self._emit("progress", self._progress(step, progress, message))

    async def checkpoint(self, name: str, data: dict[str, Any] | None = None) -> BaseEvent | None:
        if not self._allowed("checkpoint"):
            return None
        return await self._emit("checkpoint", self._checkpoint(name, data))

    async def emit_token(self, content: str, finish_reason: str | None = None) -> BaseEvent | None:
        if not self._allowed("token"):
            return None
        return await self._emit("token", self._token(content, finish_reason))

    async def emit_step(
        self,
        node_name: str,
        duration_ms: int | None = None,
        input_keys: list[str] | None = None,
        output_keys: list[str] | None = None,
    ) -> BaseEvent | None:
        if not self._allowed("step"):
            return None
        return await self._emit("step", self._step(node_name, duration_ms, input_keys, output_keys))

    async def emit(
        self, event_type: str, data: dict[str, Any] | None = None, **fields: Any
    ) -> BaseEvent | None:
        """A custom event: `emit("fraud_check", score=0.2)` goes out as `custom:fraud_check`."""
        name, build = self._custom(event_type, data, fields)
        if not self._allowed("custom", name):
            return None
        return await self._emit(f"custom:{name}", build)

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
        return await self._finish(
            RunStatus.COMPLETED,
            "complete",
            lambda seq: CompleteEvent(
                run_id=self._run_id,
                sequence=seq,
                output=output,
                latency_seconds=latency_seconds,
                metadata=metadata or {},
            ),
            output=output,
        )

    async def emit_error(
        self, error: str, code: str = "INTERNAL_ERROR", details: dict[str, Any] | None = None
    ) -> BaseEvent:
        return await self._finish(
            RunStatus.FAILED,
            "error",
            lambda seq: ErrorEvent(
                run_id=self._run_id, sequence=seq, error=error, code=code, details=details
            ),
            error={"message": error, "code": code, "details": details},
        )

    async def emit_cancelled(self, reason: str | None = None) -> BaseEvent:
        event = await self._finish(
            RunStatus.CANCELLED,
            "cancelled",
            lambda seq: CancelledEvent(run_id=self._run_id, sequence=seq, reason=reason),
            error=None,
        )
        self.cancel(reason)
        return event

    # --- sync emitters (worker threads) ------------------------------------------------

    def sync_emit_progress(self, step: str, progress: float, message: str | None = None) -> bool:
        if not self._allowed("progress"):
            return False
        self._stage("progress", self._progress(step, progress, message))
        return True

    def sync_checkpoint(self, name: str, data: dict[str, Any] | None = None) -> bool:
        if not self._allowed("checkpoint"):
            return False
        self._stage("checkpoint", self._checkpoint(name, data))
        return True

    def sync_emit_token(self, content: str, finish_reason: str | None = None) -> bool:
        if not self._allowed("token"):
            return False
        self._stage("token", self._token(content, finish_reason))
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
        self._stage("step", self._step(node_name, duration_ms, input_keys, output_keys))
        return True

    def sync_emit(self, event_type: str, data: dict[str, Any] | None = None, **fields: Any) -> bool:
        name, build = self._custom(event_type, data, fields)
        if not self._allowed("custom", name):
            return False
        self._stage(f"custom:{name}", build)
        return True

    def sync_emit_heartbeat(self) -> bool:
        """See `emit_heartbeat`: records nothing."""
        return False

    # --- queue mode ----------------------------------------------------------------------

    def drain_queued_events(self) -> list[BaseEvent]:
        with self._lock:
            events, self._queue = self._queue, []
        return events

    def has_queued_events(self) -> bool:
        return bool(self._queue)

    def queue_size(self) -> int:
        return len(self._queue)

    # --- event builders ----------------------------------------------------------------

    def _progress(
        self, step: str, progress: float, message: str | None
    ) -> Callable[[int], BaseEvent]:
        return lambda seq: ProgressEvent(
            run_id=self._run_id, sequence=seq, step=step, progress=progress, message=message
        )

    def _checkpoint(self, name: str, data: dict[str, Any] | None) -> Callable[[int], BaseEvent]:
        return lambda seq: CheckpointEvent(
            run_id=self._run_id, sequence=seq, name=name, data=data or {}
        )

    def _token(self, content: str, finish_reason: str | None) -> Callable[[int], BaseEvent]:
        if not isinstance(content, str):
            raise TypeError(f"token content must be a string, got {type(content).__name__}")
        run_id = self._run_id
        # The hottest path: fields are already checked, so skip pydantic's validation.
        return lambda seq: TokenEvent.model_construct(
            id=new_event_id(),
            type="token",
            run_id=run_id,
            sequence=seq,
            timestamp=datetime.now(UTC),
            content=content,
            finish_reason=finish_reason,
        )

    def _step(
        self,
        node_name: str,
        duration_ms: int | None,
        input_keys: list[str] | None,
        output_keys: list[str] | None,
    ) -> Callable[[int], BaseEvent]:
        return lambda seq: StepEvent(
            run_id=self._run_id,
            sequence=seq,
            node_name=node_name,
            duration_ms=duration_ms,
            input_keys=input_keys or [],
            output_keys=output_keys or [],
        )

    def _custom(
        self, event_type: str, data: dict[str, Any] | None, fields: dict[str, Any]
    ) -> tuple[str, Callable[[int], BaseEvent]]:
        name = custom_event_name(event_type)
        if name in CONFIGURABLE_EVENT_TYPES or name in MANDATORY_EVENT_TYPES:
            raise ValueError(
                f"{event_type!r} is a built-in event type; use its own method "
                f"(emit_{name}, ...) or pick another custom name"
            )
        if data is not None and not isinstance(data, dict):
            raise TypeError(f"custom event data must be a dict, got {type(data).__name__}")
        payload = {**(data or {}), **fields}
        clash = _RESERVED.intersection(payload)
        if clash:
            raise ValueError(
                f"custom event data cannot use the reserved keys {', '.join(sorted(clash))}"
            )
        return name, lambda seq: BaseEvent(
            type=f"custom:{name}", run_id=self._run_id, sequence=seq, **payload
        )

    def __repr__(self) -> str:
        return f"StreamContext(run_id={self._run_id!r}, next_sequence={self._next_sequence})"


def _safe_emit(backend: StreamingBackend, event: BaseEvent) -> bool:
    try:
        return bool(backend.emit(event))
    except Exception:
        return False
