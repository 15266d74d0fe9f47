"""Sinks: where a `StreamContext` delivers the events it numbered.

Two kinds. A run-log sink (`RunLogSink`, which `EventBus` is) receives batches of
serialized records and the terminal event, and stores them in a backend. A streaming sink
(`StreamingSink`) receives each event object on the emitting thread, as it is emitted: a
queue-mode context collects its events in a `QueueSink`, and may first offer each one to a
streaming sink such as `LangGraphSink`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from .models import BaseEvent
from .record import EventRecord
from .runs import RunStatus

__all__ = ["LangGraphSink", "QueueSink", "RunLogSink", "StreamingSink"]


class RunLogSink(Protocol):
    """A run's log, written in batches: an `EventBus`, a `PrivateRunLog`, or anything with
    these two methods. One that can store a batch without waiting may also have
    `append_now(run_id, records) -> bool` (False: not now, call `append`)."""

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None: ...

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        build: Callable[[int], BaseEvent],
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> object: ...


@runtime_checkable
class StreamingSink(Protocol):
    """Receives each event of a queue-mode context as it is emitted."""

    @property
    def name(self) -> str: ...

    def emit(self, event: BaseEvent) -> bool:
        """Deliver the event; False means unavailable and the caller keeps it itself."""
        ...

    def is_available(self) -> bool: ...


class QueueSink:
    """Collects events in a list, in emit order."""

    name = "queue"

    def __init__(self) -> None:
        self._events: list[BaseEvent] = []

    def emit(self, event: BaseEvent) -> bool:
        self._events.append(event)
        return True

    def is_available(self) -> bool:
        return True

    def drain(self) -> list[BaseEvent]:
        events, self._events = self._events, []
        return events

    def __len__(self) -> int:
        return len(self._events)


class LangGraphSink:
    """Writes `(event_type, fields)` to the stream writer of the LangGraph run in progress."""

    name = "langgraph"

    def _writer(self) -> Any:
        try:
            from langgraph.config import get_stream_writer
        except ImportError:
            return None
        try:
            return get_stream_writer()
        except Exception:  # not inside a graph run
            return None

    def emit(self, event: BaseEvent) -> bool:
        writer = self._writer()
        if writer is None:
            return False
        fields = event.to_dict()
        writer((fields.pop("type"), fields))
        return True

    def is_available(self) -> bool:
        return self._writer() is not None
