"""The machinery behind `StreamContext`: number each event, hold it, hand it to a sink.

Sequence numbers are assigned when an event is emitted, under one lock, so the log order is
the emit order whatever thread emits. `Stage` keeps the numbering and the open / ended /
cancelled state; `DirectStage` (queue mode, here) delivers each event at once, on the
emitting thread; `BatchStage` (a run log, `_batch_stage.py`) hands events to the event
loop in batches.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ._builders import Build
from .errors import RunCancelledError, StreamClosedError
from .models import BaseEvent
from .runs import RunStatus
from .sinks import QueueSink, StreamingSink

__all__ = ["DirectStage", "Stage"]


class Stage(ABC):
    """Numbering and the open / ended / cancelled state of one run's stream of events."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.lock = threading.Lock()
        self._drained: threading.Condition | None = None  # made by the first waiter
        # A worker thread waiting for the loop to write its first event (`BatchStage`).
        self._handoff: threading.Condition | None = None
        self.next_sequence = 0
        self.closed_by: str | None = None  # the terminal event type, or "cancelled"
        self.cancel_reason: str | None = None
        self.failure: BaseException | None = None  # raised by the producer's next emit
        self._cancel_callbacks: list[Callable[[], None]] = []

    @property
    def drained(self) -> threading.Condition:
        """Signalled when pending events were taken or the stream ended. Made on first use,
        always under `lock`: most runs never wait on it (one less object per run)."""
        if self._drained is None:
            self._drained = threading.Condition(self.lock)
        return self._drained

    def _notify_drained(self) -> None:
        """Wake the waiters, if any (under `lock`)."""
        if self._drained is not None:
            self._drained.notify_all()
        if self._handoff is not None:
            self._handoff.notify_all()

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:  # noqa: B027 - optional
        """The loop that owns the sink; called on that loop's thread."""

    def cancel(self, reason: str | None = None) -> None:
        callbacks: list[Callable[[], None]] = []
        with self.lock:
            if self.cancel_reason is None:
                self.cancel_reason = reason or "cancelled"
                self.closed_by = self.closed_by or "cancelled"
                callbacks, self._cancel_callbacks = self._cancel_callbacks, []
            self._notify_drained()
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        with self.lock:
            if self.cancel_reason is None:
                self._cancel_callbacks.append(callback)
                return
        callback()

    def check_open(self, event_type: str) -> None:
        """Raise what stops the producer: a sink failure, a cancellation, or an ended run."""
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        if self.cancel_reason is not None:
            raise RunCancelledError(
                f"run '{self.run_id}' was cancelled ({self.cancel_reason}); stop the agent"
            )
        if self.closed_by is not None:
            raise StreamClosedError(
                f"run '{self.run_id}' already ended with '{self.closed_by}'; "
                f"cannot emit '{event_type}' after the terminal event"
            )

    def close(self, event_type: str) -> None:
        """Mark the stream ended by `event_type`; raises if it already ended."""
        with self.lock:
            self.check_open(event_type)
            self.closed_by = event_type
            self._notify_drained()

    @abstractmethod
    def stage(self, event_type: str, build: Build) -> BaseEvent:
        """Number and hand over one non-terminal event; safe from any thread."""

    @abstractmethod
    async def emit(self, event_type: str, build: Build) -> BaseEvent:
        """`stage` for async code on the loop."""

    @abstractmethod
    async def flush(self) -> None:
        """Wait until every event staged so far is with the sink."""

    @abstractmethod
    async def finish(
        self,
        status: RunStatus,
        event_type: str,
        build: Build,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> BaseEvent:
        """Flush, then end the stream with the terminal event `build(next sequence)`."""


class DirectStage(Stage):
    """Queue mode: each event goes to `forward` if it takes it, otherwise to `queue`."""

    def __init__(self, run_id: str, forward: StreamingSink | None = None) -> None:
        super().__init__(run_id)
        self.forward = forward
        self.queue = QueueSink()

    def stage(self, event_type: str, build: Build) -> BaseEvent:
        with self.lock:
            self.check_open(event_type)
            event = build(self.next_sequence)
            if self.forward is None or not _offer(self.forward, event):
                self.queue.emit(event)
            self.next_sequence += 1
        return event

    async def emit(self, event_type: str, build: Build) -> BaseEvent:
        return self.stage(event_type, build)

    async def flush(self) -> None:
        return None

    async def finish(
        self,
        status: RunStatus,
        event_type: str,
        build: Build,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> BaseEvent:
        self.close(event_type)
        # The terminal event stays with the context, for the stream producer to drain.
        event = build(self.next_sequence)
        self.queue.emit(event)
        return event


def _offer(sink: StreamingSink, event: BaseEvent) -> bool:
    """Hand `event` to a streaming sink; a sink that raises counts as unavailable."""
    try:
        return bool(sink.emit(event))
    except Exception:
        return False
