"""`BatchStage`: the stage of a run log. Events from worker threads and from async code go
to the event loop in batches: the first event of a batch schedules one wake-up, the
following ones just join it. A producer that gets far ahead of the loop waits (bounded
memory); one whose run was cancelled gets `RunCancelledError` from its next emit, so the
agent stops; a backend that is away is retried with one backoff, events kept in order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._builders import Build
from ._staging import Stage
from .errors import BackendConnectionError, RunFinishedError
from .models import BaseEvent
from .record import EventRecord
from .runs import RunStatus
from .sinks import RunLogSink

__all__ = ["HANDOFF_QUIET", "LIVE_EVENTS", "LIVE_SECONDS", "Backoff", "BatchStage"]

log = logging.getLogger("dockrion.events")

# Live streaming from async code that never yields to the loop (an agent awaiting
# `emit_token` in a tight loop, whose awaits never suspend): its emit flushes the staged
# events and yields once, so that the readers write them, as soon as this many are waiting
# or the oldest has waited this long. The first event after a quiet spell goes at once.
# Async code that yields between events is handed over at most once per LIVE_SECONDS while
# it floods (`_wake`), so that a batch costs one write rather than one per event.
LIVE_EVENTS = 64
LIVE_SECONDS = 0.001
# A worker thread hands the loop its first event after this long a quiet spell (below).
HANDOFF_QUIET = 0.005


class Backoff:
    """How long to wait before retrying an unreachable backend: 50 ms, doubling up to 2 s,
    back to nothing after a success."""

    FIRST = 0.05
    LAST = 2.0

    def __init__(self) -> None:
        self.delay = 0.0

    @property
    def failing(self) -> bool:
        return self.delay > 0.0

    def next(self) -> float:
        self.delay = min(self.LAST, max(self.FIRST, self.delay * 2))
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


class BatchStage(Stage):
    """A run log: events are serialized when emitted and appended in batches by the loop."""

    def __init__(
        self,
        run_id: str,
        sink: RunLogSink,
        *,
        max_pending: int,
        finish_patience: float,
        max_pending_bytes: int | None = None,
    ) -> None:
        super().__init__(run_id)
        self.sink = sink
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.pending_bytes = 0  # held by `pending`, counted when a byte bound is set
        self.finish_patience = finish_patience
        self.backoff = Backoff()
        self.pending: list[EventRecord] = []
        self._wakeup_scheduled = False
        self._batch_started = 0.0  # when the oldest pending event was staged
        self._flushed_at = 0.0  # when the last flush took a batch
        self._from_thread = False  # a worker thread has staged events
        self._tasks: set[asyncio.Future[None]] = set()
        self._flush_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._handoff_waiting = False
        self._handoff_after_write = False  # the waiter goes on once its readers wrote
        # A sink that stores a batch at once (an in-process log) takes it in the loop's
        # callback, without a task per batch.
        self._append_now: Callable[[str, Sequence[EventRecord]], bool] | None = getattr(
            sink, "append_now", None
        )

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()

    # --- staging (any thread) ----------------------------------------------------------

    def stage(self, event_type: str, build: Build) -> BaseEvent:
        wake = False
        with self.lock:
            self.check_open(event_type)
            # Only other threads wait for room: the loop cannot wait for itself to flush.
            if threading.get_ident() != self._loop_thread:
                while self._full() and self.closed_by is None:
                    self.drained.wait(0.5)
                self.check_open(event_type)
            event = build(self.next_sequence)
            record = EventRecord.from_event(event)
            self.pending.append(record)
            if self.max_pending_bytes is not None:
                self.pending_bytes += record.size
            self.next_sequence += 1
            if not self._wakeup_scheduled:
                self._wakeup_scheduled = wake = True
                self._batch_started = time.monotonic()
        if wake:
            self._wake()
            first = not self._from_thread
            if threading.get_ident() != self._loop_thread and (
                first or self._batch_started - self._flushed_at >= HANDOFF_QUIET
            ):
                self._from_thread = True
                # The run's first event, or the first after a long quiet spell, from a worker
                # thread: let the loop take it before going on (at most LIVE_SECONDS) rather
                # than after the thread's GIL slice (5 ms), so that it is written as soon as
                # it is emitted. Not for every paced event: that would pace the agent.
                with self.lock:
                    if self._wakeup_scheduled and self.closed_by is None:
                        if self._handoff is None:
                            self._handoff = threading.Condition(self.lock)
                        self._handoff_waiting = True
                        self._handoff_after_write = first
                        self._handoff.wait(LIVE_SECONDS)
                        self._handoff_waiting = False
        return event

    def _full(self) -> bool:
        """Whether a worker thread waits before staging more (under `lock`)."""
        if len(self.pending) >= self.max_pending:
            return True
        limit = self.max_pending_bytes
        return limit is not None and self.pending_bytes >= limit

    async def emit(self, event_type: str, build: Build) -> BaseEvent:
        """Stage the event; it is written when the agent next yields to the loop, together
        with whatever else is ready (one append per batch, not per event). An agent that
        does not yield is made to: the first event after a quiet spell of `LIVE_SECONDS`
        at once, the following ones every `LIVE_EVENTS` events or `LIVE_SECONDS`."""
        event = self.stage(event_type, build)
        waiting = len(self.pending)
        if waiting:
            started = self._batch_started
            if (
                waiting >= LIVE_EVENTS
                or started - self._flushed_at >= LIVE_SECONDS
                or time.monotonic() - started >= LIVE_SECONDS
            ):
                await self.flush()
                if self.failure is not None or self.cancel_reason is not None:
                    self.check_open(event_type)
                await asyncio.sleep(0)  # the readers write the batch before we go on
        return event

    def _wake(self) -> None:
        loop = self._loop
        if loop is None:
            raise RuntimeError(
                "StreamContext is not bound to an event loop; create it inside the loop or "
                "call bind_loop() first"
            )
        if threading.get_ident() == self._loop_thread:
            # A batch staged less than LIVE_SECONDS after the last one left (a flood from
            # an agent that yields to the loop between events) waits for that much time to
            # pass, joined by what comes meanwhile: one hand-off to the readers, and one
            # write, per LIVE_SECONDS rather than per event. The first event after a quiet
            # spell goes at once.
            wait = self._flushed_at + LIVE_SECONDS - self._batch_started
            if wait > 0.0:
                loop.call_later(wait, self._start_flush)
            else:
                loop.call_soon(self._start_flush)
        else:
            loop.call_soon_threadsafe(self._start_flush)

    # --- flushing (the loop) -----------------------------------------------------------

    def _taken(self) -> None:
        """The pending events were taken (under `lock`): producers waiting for room go on at
        once, and so does a worker thread waiting after a quiet spell (an agent pacing its
        events must not wait for the readers too). One waiting with the run's first event
        goes on one turn of the loop later, after the readers this batch woke have written
        it: woken now, it would take the GIL back from the loop before they do, and the
        first event of a busy agent would wait for the thread's GIL slice."""
        if self._drained is not None:
            self._drained.notify_all()
        if self._handoff_waiting:
            self._handoff_waiting = False
            if self._handoff_after_write and self._loop is not None:
                self._loop.call_soon(self._end_handoff)
            elif self._handoff is not None:
                self._handoff.notify_all()

    def _end_handoff(self) -> None:
        with self.lock:
            if self._handoff is not None:
                self._handoff.notify_all()

    def _start_flush(self) -> None:
        if self._append_now is not None and self._flush_now(self._append_now):
            return
        task = asyncio.ensure_future(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _flush_now(self, append_now: Callable[[str, Sequence[EventRecord]], bool]) -> bool:
        """Hand the pending events to a sink that stores them at once. False when it cannot
        take them now (its backlog is full, or an earlier batch is still waiting for room):
        the caller then waits in `flush`, in order."""
        if self._flush_lock is not None and self._flush_lock.locked():
            return False
        finished: RunFinishedError | None = None
        with self.lock:
            batch = self.pending
            if batch:
                try:
                    if not append_now(self.run_id, batch):
                        return False
                except RunFinishedError as exc:
                    finished = exc  # the reader is gone: the batch has nowhere to go
                except Exception as exc:
                    self.failure = exc
                self.pending = []
                self.pending_bytes = 0
                self._flushed_at = time.monotonic()
            self._wakeup_scheduled = False
            self._taken()
        if finished is not None:
            self.cancel(f"run already {finished.status}")
        return True

    async def flush(self) -> None:
        if self._append_now is not None and self._flush_now(self._append_now):
            return
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            with self.lock:
                batch, self.pending = self.pending, []
                self.pending_bytes = 0
                self._wakeup_scheduled = False
                if batch:
                    self._flushed_at = time.monotonic()
                self._taken()
            if not batch:
                return
            try:
                await self.sink.append(self.run_id, batch)
            except RunFinishedError as exc:
                self.cancel(f"run already {exc.status}")
            except BackendConnectionError as exc:
                # Keep the events (in order) and try again later; the bounded buffer makes a
                # producer wait rather than grow memory while the backend is away.
                with self.lock:
                    self.pending[:0] = batch
                    if self.max_pending_bytes is not None:
                        self.pending_bytes += sum(record.size for record in batch)
                self._retry_later(exc)
            except Exception as exc:
                self.failure = exc
            else:
                self.backoff.reset()

    def _retry_later(self, exc: BaseException) -> None:
        if not self.backoff.failing:
            log.warning("run %s: backend unavailable, buffering events: %s", self.run_id, exc)
        delay = self.backoff.next()
        if self._loop is not None:
            self._loop.call_later(delay, self._start_flush)

    async def _flush_all(self) -> None:
        """Flush, waiting out a backend outage for up to `finish_patience` seconds."""
        deadline = time.monotonic() + self.finish_patience
        await self.flush()
        while self.pending and time.monotonic() < deadline:
            await asyncio.sleep(max(self.backoff.delay, Backoff.FIRST))
            await self.flush()
        if self.pending:
            raise BackendConnectionError(
                f"run '{self.run_id}': {len(self.pending)} events could not be stored "
                f"within {self.finish_patience:g}s",
                "unknown",
            )

    async def finish(
        self,
        status: RunStatus,
        event_type: str,
        build: Build,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> BaseEvent:
        await self._flush_all()
        self.close(event_type)
        built: list[BaseEvent] = []
        # A backend that can lose acknowledged events (a Redis failover) takes the terminal
        # event after the last event this producer numbered, so a reader who got them all
        # from the failed primary still reaches it.
        backend = getattr(self.sink, "backend", None)
        floor = self.next_sequence if getattr(backend, "may_lose_events", False) else 0

        def keep(sequence: int) -> BaseEvent:
            built.append(build(max(sequence, floor)))
            return built[-1]

        deadline = time.monotonic() + self.finish_patience
        while True:
            try:
                await self.sink.finish(self.run_id, status, keep, output=output, error=error)
            except RunFinishedError as exc:
                self.cancel(f"run already {exc.status}")
                raise
            except BackendConnectionError as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("run %s: cannot store '%s' yet: %s", self.run_id, event_type, exc)
                await asyncio.sleep(self.backoff.next())
                continue
            return built[-1]
