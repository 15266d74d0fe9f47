"""Following a run's log in Redis: one blocking read per run per process, whatever the
number of local subscribers, each woken when it brings something."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import RedisError

from ..record import EventRecord
from .redis_layout import decode_entries, text

__all__ = ["Tail"]

# How many of the latest records a tail keeps for local readers (trimmed to half when full).
_CACHE = 4096


class Tail:
    """One blocking read of a run's log in this process, waking every local waiter."""

    __slots__ = ("changed", "position", "recent", "task", "waiters")

    def __init__(self, position: str) -> None:
        self.changed = asyncio.Event()
        self.position = position
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None
        # What the blocking read brought, contiguous: local readers take it from here
        # instead of asking Redis again (one read per run per process, not per subscriber).
        self.recent: list[EventRecord] = []

    def cached_after(self, after: int) -> list[EventRecord]:
        recent = self.recent
        if not recent or not recent[0].sequence <= after + 1 <= recent[-1].sequence:
            return []
        return recent[after + 1 - recent[0].sequence :]

    def notify(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def follow(self, client: Any, key: str, block_ms: int) -> None:
        """Read the stream at `key` while anyone waits, waking the waiters after each read."""
        while self.waiters > 0:
            try:
                reply = await client.xread({key: self.position}, block=block_ms)
            except (RedisError, OSError):
                self.notify()  # waiters re-read and see the connection error themselves
                await asyncio.sleep(0.5)
                continue
            if reply:
                entries = reply[0][1]
                self.position = text(entries[-1][0])
                self.recent.extend(decode_entries(entries))
                if len(self.recent) > _CACHE:
                    del self.recent[: len(self.recent) - _CACHE // 2]
            self.notify()
