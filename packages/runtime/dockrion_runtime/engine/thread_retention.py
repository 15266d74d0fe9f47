"""Retention of threads (`threads.ttl_seconds`): a thread whose latest checkpoint is older
than the ttl is deleted with its checkpoints, its record and its ownership, so storage does not grow
without bound. Every instance sweeps; deleting a thread twice is harmless, and a thread a
run holds is left for the next sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from dockrion_events import BackendError, EventBackend

from ..agents import Agent

__all__ = ["ThreadRetention"]

log = logging.getLogger("dockrion.runtime")

# The longest pause between two sweeps (a short ttl sweeps more often).
_MAX_SWEEP_INTERVAL = 300.0


class ThreadRetention:
    def __init__(self, ttl_seconds: float, backend: Callable[[], EventBackend]) -> None:
        self.ttl = ttl_seconds
        self.interval = min(_MAX_SWEEP_INTERVAL, max(0.5, ttl_seconds / 4))
        self._backend = backend  # where thread ownership and turns live
        self._task: asyncio.Task[None] | None = None

    def start(self, agent: Agent) -> None:
        self._task = asyncio.create_task(self._sweep_forever(agent))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sweep(self, agent: Agent) -> list[str]:
        """Delete the threads past their ttl; returns their ids."""
        backend = self._backend()
        deleted = []
        for thread_id in await agent.threads_older_than(time.time() - self.ttl):
            if await backend.thread_turn_holder(thread_id) is not None:
                continue  # a run holds it: it is not stale
            await agent.forget_thread(thread_id)
            await backend.delete_thread_record(thread_id)
            owner = await backend.thread_owner(thread_id)
            if owner is not None:
                await backend.release_thread(thread_id, owner)
            deleted.append(thread_id)
        return deleted

    async def _sweep_forever(self, agent: Agent) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                deleted = await self.sweep(agent)
            except (BackendError, OSError) as exc:
                log.warning("thread retention: the sweep failed, trying again later: %s", exc)
                continue
            except Exception:
                log.exception("thread retention: the sweep failed, trying again later")
                continue
            if deleted:
                log.info("thread retention: %d thread(s) past their ttl deleted", len(deleted))
