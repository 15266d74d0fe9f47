"""One run at a time per thread, on every instance: a run on a thread holds the thread's
turn (a lease in the events backend, renewed while the run lasts) and gives it back when it
ends. A run sent while another holds it follows its multitask strategy: `reject` (409
THREAD_BUSY at once), `enqueue` (accepted; it waits in line and starts when the thread is
free, in the order the runs arrived), `interrupt` (the thread's runs, running or waiting, are
stopped, their progress kept, and the new run takes the turn they give back: background
runs are cancelled, streaming calls and `/invoke` are stopped where they run, on this
instance at once, on another through the events backend) or `rollback` (the same, and
once the turn is taken, the checkpoints written since the earliest of them began are
removed)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

from starlette.requests import Request

from dockrion_events import (
    BackendError,
    EventBackend,
    InMemoryBackend,
    RunFinishedError,
    RunManager,
    RunNotFoundError,
    RunStatus,
)

from ..agents import Agent
from ..errors import RuntimeHTTPError
from .thread_records import THREAD_RECORD_RUNS, ThreadRecords

__all__ = ["MULTITASK_STRATEGIES", "ThreadTurn", "ThreadTurns"]

log = logging.getLogger("dockrion.runtime")

MULTITASK_STRATEGIES = ("reject", "enqueue", "interrupt", "rollback")
# A waiter asks again after this long at first, backing off to `_POLL_MAX` (a waiter that
# stops asking leaves the line once its lease runs out).
_POLL_FIRST = 0.02
_POLL_MAX = 0.25
# How often a run on a thread shared with other instances asks whether it was stopped.
_STOP_POLL = 0.5
_GOING = (RunStatus.ACCEPTED.value, RunStatus.RUNNING.value)
_BACKGROUND = ("background", "ag-ui")  # runs with a state of their own, cancelled as runs


class ThreadTurn:
    """A run's turn on its thread: held at once, or waited for in line (`wait`), then kept
    (renewed) until `end`."""

    def __init__(
        self,
        backend: EventBackend,
        thread_id: str,
        lease_seconds: float,
        *,
        held: bool,
        local: dict[str, ThreadTurn] | None = None,
    ) -> None:
        self.backend = backend
        self.thread_id = thread_id
        self.holder = uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self.held = held
        self._renewal: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._ended = False
        # this instance's turns, by holder: a stop reaches them at once
        self._local = local if local is not None else {}
        self._local[self.holder] = self
        self._on_stop: Callable[[str], object] | None = None
        self.stopped: str | None = None  # why it was asked to stop
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

    def stop_with(self, on_stop: Callable[[str], object]) -> None:
        """How the run stops when a new run on its thread asks (interrupt, rollback): called
        with the reason, at once if it was asked already. A run on a thread shared with
        other instances also asks the events backend, every `_STOP_POLL` seconds."""
        self._on_stop = on_stop
        if self.stopped is not None:
            on_stop(self.stopped)
        elif self._watch is None and not isinstance(self.backend, InMemoryBackend):
            self._watch = asyncio.create_task(self._watch_for_stop())

    def stop(self, reason: str) -> None:
        if self.stopped is None and not self._ended:
            self.stopped = reason
            if self._on_stop is not None:
                self._on_stop(reason)

    async def _watch_for_stop(self) -> None:
        while self.stopped is None:
            await asyncio.sleep(_STOP_POLL)
            try:
                reason = await self.backend.thread_turn_stopping(self.thread_id, self.holder)
                if reason is not None:
                    self.stop(reason)
            except BackendError as exc:
                log.warning("thread %s: cannot read stop requests: %s", self.thread_id, exc)

    async def end(self) -> None:
        """Give the turn back (or leave the line); once, whatever happened to the run."""
        if self._ended:
            return
        self._ended = True
        self._local.pop(self.holder, None)
        for task in (self._renewal, self._watch):
            if task is not None:
                task.cancel()
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
        records: Callable[[], ThreadRecords | None] = lambda: None,
    ) -> None:
        self.default_strategy = default_strategy
        self.lease_seconds = lease_seconds
        self._runs = runs  # the background runs (interrupt and rollback cancel them)
        self._records = records  # each thread's runs, however they came in
        self._local: dict[str, ThreadTurn] = {}  # this instance's turns, by holder

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
        self, backend: EventBackend, request: Request, thread_id: str, agent: Agent
    ) -> ThreadTurn:
        """The turn of a run about to be sent to `thread_id`: held, or in line; 409
        THREAD_BUSY under `reject` when another run holds it or waits for it."""
        strategy = self.strategy(request)
        turn = ThreadTurn(backend, thread_id, self.lease_seconds, held=False, local=self._local)
        turn.held = await backend.take_thread_turn(
            thread_id, turn.holder, self.lease_seconds, wait=strategy != "reject"
        )
        if turn.held:
            return turn
        if strategy == "reject":
            await turn.end()
            raise RuntimeHTTPError(
                f"Thread '{thread_id}' is busy with another run (multitask_strategy reject): "
                "send it again once that run ends, or use multitask_strategy=enqueue",
                "THREAD_BUSY",
            )
        if strategy in ("interrupt", "rollback"):
            began = await self._stop_runs_on(backend, thread_id, strategy, turn.holder)
            if strategy == "rollback" and began is not None:
                turn.on_taken = functools.partial(agent.roll_back_thread, thread_id, began)
        return turn

    async def _stop_runs_on(
        self, backend: EventBackend, thread_id: str, strategy: str, newcomer: str
    ) -> float | None:
        """Stop the thread's runs, running or waiting, from its record: background runs
        are cancelled, the others (streaming calls, `/invoke`) asked to stop where they
        run. Returns when the earliest of them began (Unix seconds), None when none had."""
        records = self._records()
        if records is None:
            return None
        runs = self._runs()
        reason = f"a new run on the thread ({strategy})"
        began: list[float] = []
        for entry in await records.entries(thread_id, THREAD_RECORD_RUNS):
            if entry["status"] not in _GOING or entry.get("holder") == newcomer:
                continue
            if entry.get("via") in _BACKGROUND:
                if runs is None:
                    continue
                with contextlib.suppress(RunFinishedError, RunNotFoundError):
                    run = await runs.cancel_run(entry["run_id"], reason)
                    began.append((run.started_at or run.created_at).timestamp())
                continue
            holder = entry.get("holder")
            if holder is None:
                continue
            local = self._local.get(holder)
            if local is not None:
                local.stop(reason)
            else:
                await backend.stop_thread_turn(thread_id, holder, reason, self.lease_seconds * 10)
            if entry.get("started_at"):
                began.append(datetime.fromisoformat(entry["started_at"]).timestamp())
        return min(began) if began else None
