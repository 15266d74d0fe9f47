"""One run at a time per thread, on every instance: a run on a thread holds the thread's
turn (a lease in the events backend, renewed while the run lasts) and gives it back when it
ends. A run sent while another holds it follows its multitask strategy: `reject` (409
THREAD_BUSY at once) or `enqueue` (accepted; it waits in line and starts when the thread is
free, in the order the runs arrived)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from starlette.requests import Request

from dockrion_events import BackendError, EventBackend

from ..errors import RuntimeHTTPError

__all__ = ["MULTITASK_STRATEGIES", "ThreadTurn", "ThreadTurns"]

log = logging.getLogger("dockrion.runtime")

MULTITASK_STRATEGIES = ("reject", "enqueue")
# A waiter asks again after this long at first, backing off to `_POLL_MAX` (a waiter that
# stops asking leaves the line once its lease runs out).
_POLL_FIRST = 0.02
_POLL_MAX = 0.25


class ThreadTurn:
    """A run's turn on its thread: held at once, or waited for in line (`wait`), then kept
    (renewed) until `end`."""

    def __init__(
        self, backend: EventBackend, thread_id: str, lease_seconds: float, *, held: bool
    ) -> None:
        self.backend = backend
        self.thread_id = thread_id
        self.holder = uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self.held = held
        self._renewal: asyncio.Task[None] | None = None
        self._ended = False

    async def wait(self) -> None:
        """Return once this run holds the thread's turn (at once when it already does)."""
        pause = _POLL_FIRST
        while not self.held:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX)
            self.held = await self.backend.take_thread_turn(
                self.thread_id, self.holder, self.lease_seconds, wait=True
            )
        if self._renewal is None:
            self._renewal = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                kept = await self.backend.take_thread_turn(
                    self.thread_id, self.holder, self.lease_seconds, wait=False
                )
            except BackendError as exc:
                log.warning("thread %s: renewing its turn failed: %s", self.thread_id, exc)
                continue
            if not kept:
                log.warning("thread %s: a run lost its turn (its lease ran out)", self.thread_id)
                return

    async def end(self) -> None:
        """Give the turn back (or leave the line); once, whatever happened to the run."""
        if self._ended:
            return
        self._ended = True
        if self._renewal is not None:
            self._renewal.cancel()
        with contextlib.suppress(BackendError):
            # shielded: a cancelled run still frees its thread
            await asyncio.shield(self.backend.end_thread_turn(self.thread_id, self.holder))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Wait for the turn, hold it for the block, give it back."""
        try:
            await self.wait()
            yield
        finally:
            await self.end()


class ThreadTurns:
    """Takes turns on threads for runs, with the Dockfile's default strategy."""

    def __init__(self, default_strategy: str, lease_seconds: float) -> None:
        self.default_strategy = default_strategy
        self.lease_seconds = lease_seconds

    def strategy(self, request: Request) -> str:
        """`?multitask_strategy=`, else the Dockfile's default."""
        query = (
            request.query_params.get("multitask_strategy")
            if request.scope["query_string"]
            else None
        )
        if query is None:
            return self.default_strategy
        if query not in MULTITASK_STRATEGIES:
            raise RuntimeHTTPError(
                f"multitask_strategy must be one of {', '.join(MULTITASK_STRATEGIES)}, got "
                f"{query[:40]!r}",
                "VALIDATION_ERROR",
            )
        return query

    async def take(self, backend: EventBackend, request: Request, thread_id: str) -> ThreadTurn:
        """The turn of a run about to be sent to `thread_id`: held, or in line (`enqueue`);
        409 THREAD_BUSY under `reject` when another run holds it or waits for it."""
        strategy = self.strategy(request)
        turn = ThreadTurn(backend, thread_id, self.lease_seconds, held=False)
        turn.held = await backend.take_thread_turn(
            thread_id, turn.holder, self.lease_seconds, wait=strategy == "enqueue"
        )
        if not turn.held and strategy == "reject":
            raise RuntimeHTTPError(
                f"Thread '{thread_id}' is busy with another run (multitask_strategy reject): "
                "send it again once that run ends, or use multitask_strategy=enqueue",
                "THREAD_BUSY",
            )
        return turn
