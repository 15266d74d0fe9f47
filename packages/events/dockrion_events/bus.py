"""EventBus: publish to a run's log, replay it, and follow it live as one operation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from .backends.base import EventBackend, TerminalEventFactory
from .models import BaseEvent
from .record import EventRecord
from .runs import Run, RunStatus

__all__ = ["EventBus"]


class EventBus:
    """A thin, typed front of a backend, shared by producers and subscribers."""

    def __init__(self, backend: EventBackend) -> None:
        self._backend = backend

    @property
    def backend(self) -> EventBackend:
        return self._backend

    async def publish(self, run_id: str, event: BaseEvent) -> EventRecord:
        record = EventRecord.from_event(event)
        await self._backend.append(run_id, [record])
        return record

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        await self._backend.append(run_id, records)

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        build: TerminalEventFactory,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> tuple[Run, EventRecord]:
        return await self._backend.finish_run(run_id, status, build, output=output, error=error)

    async def replay(self, run_id: str, from_sequence: int = 0) -> list[EventRecord]:
        """What is stored now, from `from_sequence` (inclusive); does not wait."""
        records, _ = await self._backend.read(run_id, from_sequence - 1, timeout=0)
        return records

    async def get_events(self, run_id: str, from_sequence: int = 0) -> list[BaseEvent]:
        return [record.event() for record in await self.replay(run_id, from_sequence)]

    async def subscribe(
        self, run_id: str, from_sequence: int = 0, *, heartbeat: float | None = None
    ) -> AsyncIterator[list[EventRecord]]:
        """Batches of events from `from_sequence` (inclusive) to the terminal event.

        Past and live events come from the same read, so nothing is lost or repeated at the
        seam. With `heartbeat`, an empty batch is yielded after that many idle seconds. Ends
        after the terminal event, or at once if the cursor is already past it.
        """
        after = from_sequence - 1
        while True:
            records, finished = await self._backend.read(run_id, after, timeout=heartbeat)
            if records:
                after = records[-1].sequence
                yield records
            elif not finished:
                yield records  # idle: the caller may send a heartbeat
            if finished:
                return

    async def close(self) -> None:
        await self._backend.close()
