"""Queue-mode plug-ins: where a queue-mode context sends events instead of its own queue."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .models import BaseEvent

__all__ = ["LangGraphBackend", "QueueBackend", "StreamingBackend"]


@runtime_checkable
class StreamingBackend(Protocol):
    @property
    def name(self) -> str: ...

    def emit(self, event: BaseEvent) -> bool:
        """Deliver the event; False means unavailable and the caller keeps it itself."""
        ...

    def is_available(self) -> bool: ...


class QueueBackend:
    """Collects events in a list."""

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


class LangGraphBackend:
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
