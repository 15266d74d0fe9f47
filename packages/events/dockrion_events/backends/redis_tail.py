"""Following a run's log in Redis: one blocking read per run per process, whatever the
number of local subscribers, each woken when it brings something. What it brings is kept
(the latest few thousand records) for every local reader: one caught up with it waits for
the next read without asking Redis anything, one a little behind takes its records from
here, and what a lagging reader fetched is kept too when it joins up with the rest. What
this process appends itself joins the same cache as soon as Redis has accepted it: local
readers of a run the agent runs here do not wait for the read to bring it back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from ..record import EventRecord
from .redis_layout import decode_entries

__all__ = ["Tail"]

# How many of the latest records a tail keeps for local readers (trimmed to half when full).
_CACHE = 4096
# A reader caught up with a tail that brought records this recently trusts it to bring the
# next ones (no round trip); past it, the reader checks the run's state in Redis itself.
_FRESH = 1.0


class Tail:
    """One blocking read of a run's log in this process, waking every local waiter."""

    __slots__ = ("changed", "failed", "position", "read_at", "recent", "task", "waiters")

    def __init__(self, position: str) -> None:
        self.changed = asyncio.Event()
        self.position = position
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None
        self.failed = False  # the last read failed: readers ask Redis and see the error
        self.read_at = 0.0  # when a read last brought records
        # What the blocking read brought, contiguous: local readers take it from here
        # instead of asking Redis again (one read per run per process, not per subscriber).
        self.recent: list[EventRecord] = []

    def cached_after(self, after: int) -> list[EventRecord]:
        recent = self.recent
        if not recent or not recent[0].sequence <= after + 1 <= recent[-1].sequence:
            return []
        return recent[after + 1 - recent[0].sequence :]

    @property
    def seen(self) -> int:
        """The last sequence this tail has read or was given (-1: none yet)."""
        return -1 if self.position == "0-0" else int(self.position.split("-")[0])

    def add_local(self, records: Sequence[EventRecord]) -> None:
        """Records this process has just appended to the log: local readers get them at
        once, without waiting for the blocking read to bring them back, and the next read
        starts after them. Ignored unless they follow on from what the tail has."""
        if not records or records[0].sequence != self.seen + 1:
            return
        self.position = f"{records[-1].sequence}-1"
        self._keep(records)
        self.notify()

    def _keep(self, records: Sequence[EventRecord]) -> None:
        self.read_at = time.monotonic()
        recent = self.recent
        recent.extend(records)
        if len(recent) > _CACHE:
            del recent[: len(recent) - _CACHE // 2]

    def following(self, after: int) -> bool:
        """Whether a reader at `after` can wait for this tail's next read without asking
        Redis: it has everything the tail read, and the tail is reading and fresh."""
        return (
            self.seen == after
            and not self.failed
            and self.task is not None
            and not self.task.done()
            and time.monotonic() - self.read_at < _FRESH
        )

    def keep_earlier(self, records: list[EventRecord]) -> None:
        """Keep the records a lagging reader fetched when they lead up to the cache, so
        the next reader from there takes them from here (within the cache's bound)."""
        recent = self.recent
        if not records or not recent:
            return
        first = recent[0].sequence
        if records[0].sequence < first <= records[-1].sequence + 1:
            earlier = records[: first - records[0].sequence]
            if len(earlier) + len(recent) <= _CACHE:
                recent[:0] = earlier

    def notify(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def follow(self, client: Any, key: str, block_ms: int) -> None:
        """Read the stream at `key` while anyone waits, waking the waiters after each read."""
        while self.waiters > 0:
            try:
                reply = await client.xread({key: self.position}, block=block_ms)
            except (RedisError, OSError):
                self.failed = True
                self.notify()  # waiters re-read and see the connection error themselves
                await asyncio.sleep(0.5)
                continue
            self.failed = False
            if reply:
                # What this process appended meanwhile is here already (`add_local`).
                seen = self.seen
                records = [r for r in decode_entries(reply[0][1]) if r.sequence > seen]
                if records:
                    self.position = f"{records[-1].sequence}-1"
                    self._keep(records)
                else:
                    self.read_at = time.monotonic()
            self.notify()
