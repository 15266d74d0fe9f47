"""One run at a time per thread, on every instance: a run on a thread holds the thread's
turn (a lease in the events backend, renewed while the run lasts) and gives it back when it
ends. A run sent while another holds it follows its multitask strategy: `reject` (409
THREAD_BUSY at once), `enqueue` (accepted; it waits in line and starts when the thread is
free, in the order the runs arrived), `interrupt` (the thread's background runs, running or
waiting, are cancelled, their progress kept, and the new run takes the turn they give
back) or `rollback` (the same, and once the turn is taken, the checkpoints written since
the earliest of them began are removed)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request

from dockrion_events import (
    BackendError,
    EventBackend,
    RunFinishedError,
    RunManager,
    RunNotFoundError,
    RunStatus,
)

from ..agents import Agent
from ..auth import principal_of
from ..errors import RuntimeHTTPError

__all__ = ["MULTITASK_STRATEGIES", "ThreadTurn", "ThreadTurns"]

log = logging.getLogger("dockrion.runtime")

MULTITASK_STRATEGIES = ("reject", "enqueue", "interrupt", "rollback")
# A waiter asks again after this long at first, backing off to `_POLL_MAX` (a waiter that
# stops asking leaves the line once its lease runs out).
_POLL_FIRST = 0.02
_POLL_MAX = 0.25
# The most runs of one status interrupt and rollback look through for the thread's runs.
_MAX_CANCELLED = 1000


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
        # done once the turn is taken, before the run starts (rollback's removal)
        self.on_taken: Callable[[], Awaitable[None]] | None = None

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
        if self.on_taken is not None:
            on_taken, self.on_taken = self.on_taken, None
            await on_taken()

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

    def __init__(
        self,
        default_strategy: str,
        lease_seconds: float,
        runs: Callable[[], RunManager | None] = lambda: None,
    ) -> None:
        self.default_strategy = default_strategy
        self.lease_seconds = lease_seconds
        self._runs = runs  # the background runs (interrupt and rollback cancel them)

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

    async def take(
        self,
        backend: EventBackend,
        request: Request,
        thread_id: str,
        agent: Agent,
        *,
        strategy: str | None = None,
    ) -> ThreadTurn:
        """The turn of a run about to be sent to `thread_id`: held, or in line; 409
        THREAD_BUSY under `reject` when another run holds it or waits for it. `strategy`
        (already checked) wins over the request's query and the default."""
        strategy = strategy or self.strategy(request)
        turn = ThreadTurn(backend, thread_id, self.lease_seconds, held=False)
        turn.held = await backend.take_thread_turn(
            thread_id, turn.holder, self.lease_seconds, wait=strategy != "reject"
        )
        if turn.held:
            return turn
        if strategy == "reject":
            raise RuntimeHTTPError(
                f"Thread '{thread_id}' is busy with another run (multitask_strategy reject): "
                "send it again once that run ends, or use multitask_strategy=enqueue",
                "THREAD_BUSY",
            )
        if strategy in ("interrupt", "rollback"):
            began = await self._cancel_runs_on(request, thread_id, strategy)
            if strategy == "rollback" and began is not None:
                turn.on_taken = functools.partial(agent.roll_back_thread, thread_id, began)
        return turn

    async def _cancel_runs_on(
        self, request: Request, thread_id: str, strategy: str
    ) -> float | None:
        """Cancel the caller's background runs on the thread, running or waiting; returns
        when the earliest of them began (Unix seconds), None when there were none."""
        runs = self._runs()
        if runs is None:
            return None
        owner = principal_of(request).id
        began: list[float] = []
        for status in (RunStatus.RUNNING, RunStatus.ACCEPTED):
            for run in await runs.list_runs(status, _MAX_CANCELLED, owner=owner):
                if run.owner != owner or run.metadata.get("thread_id") != thread_id:
                    continue
                with contextlib.suppress(RunFinishedError, RunNotFoundError):
                    await runs.cancel_run(run.run_id, f"a new run on the thread ({strategy})")
                    began.append((run.started_at or run.created_at).timestamp())
        return min(began) if began else None
