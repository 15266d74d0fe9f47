"""The log of a run that only its own request reads: `POST /invoke/stream` and its WebSocket
twin (Pattern A).

No backend, no shared state and no `Run` record: one reader takes whatever is ready in one
batch, and what it took is forgotten. A `StreamContext` writes to it like to any run log
(`append`, `finish`); appends the loop makes itself go in at once (`append_now`), without
a task per batch. The backlog is bounded: while the reader is `backlog` events or
`max_bytes` bytes (events' JSON and frames) behind, the producer waits (a slow client slows
the agent; nothing is dropped). A batch larger than `max_bytes` on its own still goes in
once the reader has taken everything before it. When the reader leaves,
the log is closed and the producer's next append raises `RunFinishedError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ._waiting import wait_set
from .errors import RunFinishedError
from .models import BaseEvent
from .record import EventRecord
from .runs import RunStatus

__all__ = ["PrivateRunLog"]


class PrivateRunLog:
    """A one-reader, in-process run log (a `RunLogSink`)."""

    def __init__(self, run_id: str, backlog: int = 10_000, max_bytes: int = 1 << 20) -> None:
        self.run_id = run_id
        self.backlog = backlog
        self.max_bytes = max_bytes
        self._records: list[EventRecord] = []
        self._bytes = 0  # held by `_records`
        self._next_sequence = 0
        self._ended: RunStatus | None = None  # set with the terminal event
        self._closed = False  # the reader went away
        self._ready = asyncio.Event()  # records (or the end) for the reader
        self._room: asyncio.Event | None = None  # made by the first producer that waits

    @property
    def pending(self) -> int:
        """Events stored and not yet taken by the reader."""
        return len(self._records)

    @property
    def pending_bytes(self) -> int:
        """Bytes of the events stored and not yet taken by the reader."""
        return self._bytes

    # --- the writer (a StreamContext, on the loop) ----------------------------------------

    def append_now(self, run_id: str, records: Sequence[EventRecord]) -> bool:
        """Store `records` at once; False (nothing stored) while the backlog is full."""
        self._check_open()
        if not records:
            return True
        size = sum(record.size for record in records)
        if self._records and (
            len(self._records) >= self.backlog or self._bytes + size > self.max_bytes
        ):
            return False
        self._bytes += size
        self._records.extend(records)
        self._next_sequence = records[-1].sequence + 1
        self._ready.set()
        return True

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        while not self.append_now(run_id, records):
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        build: Callable[[int], BaseEvent],
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Store the terminal event `build(next sequence)` (beyond the backlog: the end is
        never held back)."""
        self._check_open()
        record = EventRecord.from_event(build(self._next_sequence))
        self._records.append(record)
        self._next_sequence += 1
        self._ended = status
        self._ready.set()
        return record

    def _check_open(self) -> None:
        if self._ended is not None:
            raise RunFinishedError(self.run_id, self._ended.value)
        if self._closed:
            raise RunFinishedError(self.run_id, RunStatus.CANCELLED.value)

    # --- the reader ----------------------------------------------------------------------

    async def batches(self, heartbeat: float | None = None) -> AsyncIterator[list[EventRecord]]:
        """Every event in order, in batches of what is ready, to the terminal event; with
        `heartbeat`, an empty batch after that many idle seconds. Closing the iterator
        closes the log."""
        ready = self._ready
        try:
            while True:
                if not self._records:
                    if self._ended is not None:
                        return
                    ready.clear()
                    if not await wait_set(ready, heartbeat):
                        yield []
                        continue
                batch, self._records = self._records, []
                self._bytes = 0
                if self._room is not None:
                    self._room.set()
                yield batch
                if self._ended is not None and not self._records:
                    return
        finally:
            self._closed = True
            if self._room is not None:
                self._room.set()
