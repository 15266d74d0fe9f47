"""RunManager: create runs, move them through their lifecycle, cancel them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from .bus import EventBus
from .context import StreamContext
from .errors import BackendError, InvalidRunIdError, RunFinishedError, RunNotFoundError
from .filter import EventsFilter
from .models import CancelledEvent, ErrorEvent
from .runs import Run, RunStatus, generate_run_id, validate_run_id

__all__ = ["AttemptingBackend", "LeasedBackend", "RunManager"]


log = logging.getLogger("dockrion.events")

ORPHANED_MESSAGE = "The instance running this run stopped before it finished"


def _orphaned_event(run_id: str, sequence: int) -> ErrorEvent:
    return ErrorEvent(run_id=run_id, sequence=sequence, error=ORPHANED_MESSAGE, code="RUN_ORPHANED")


def _stop_if_cancelled(cause: BaseException | None = None) -> None:
    """A Redis command may swallow its task's cancellation (redis-py answers a command
    cancelled midway with a connection error, or even with its reply): a loop that goes on
    after a backend call stops when its task is being cancelled all the same, or whoever
    awaits the task (`close`) waits for ever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause


@runtime_checkable
class LeasedBackend(Protocol):
    """A backend shared between processes, which tracks who runs each run (Redis)."""

    async def renew_lease(self, run_id: str, holder: str, ttl_ms: int) -> bool: ...

    async def orphaned_runs(self) -> list[str]: ...

    async def get_run(self, run_id: str) -> Run | None: ...


@runtime_checkable
class AttemptingBackend(LeasedBackend, Protocol):
    """A shared backend whose runs a worker may take over after their worker died."""

    async def begin_attempt(self, run_id: str, holder: str, ttl_ms: int) -> tuple[int, int]: ...


class RunManager:
    """Runs of one agent on one bus. Contexts of the runs started here live here."""

    def __init__(
        self,
        event_bus: EventBus,
        allow_client_ids: bool = True,
        agent_name: str | None = None,
        framework: str | None = None,
        *,
        id_generator: Callable[[], str] | None = None,
        events_filter: EventsFilter | None = None,
        lease_seconds: float = 10.0,
        check_interval: float = 0.5,
    ) -> None:
        self._bus = event_bus
        self._allow_client_ids = allow_client_ids
        self._agent_name = agent_name
        self._framework = framework
        self._id_generator = id_generator or generate_run_id
        self._events_filter = events_filter
        self._contexts: dict[str, StreamContext] = {}
        # Shared backends (Redis): this instance holds a lease on the runs it executes and
        # notices when another instance ends one of them.
        self.instance_id = uuid.uuid4().hex
        self._lease_seconds = lease_seconds
        self._check_interval = check_interval
        self._guards: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None

    @property
    def bus(self) -> EventBus:
        return self._bus

    async def create_run(
        self,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        owner: str | None = None,
        events_filter: EventsFilter | None = None,
    ) -> Run:
        """A new ACCEPTED run. Raises `InvalidRunIdError` or `RunExistsError`."""
        if run_id is not None:
            if not self._allow_client_ids:
                raise InvalidRunIdError("Client-supplied run ids are not allowed here")
            validate_run_id(run_id)
        else:
            run_id = validate_run_id(str(self._id_generator()))
        run = Run(
            run_id=run_id,
            metadata=metadata or {},
            owner=owner,
            agent_name=self._agent_name,
            framework=self._framework,
        )
        await self._bus.backend.create_run(run)
        self._contexts[run_id] = StreamContext(
            run_id,
            self._bus,
            agent_name=self._agent_name,
            framework=self._framework,
            events_filter=events_filter or self._events_filter,
        )
        return run

    def get_context(
        self, run_id: str, events_filter: EventsFilter | None = None
    ) -> StreamContext | None:
        context = self._contexts.get(run_id)
        if context is not None and events_filter is not None:
            context.events_filter = events_filter
        return context

    async def get_run(self, run_id: str) -> Run | None:
        return await self._bus.backend.get_run(run_id)

    async def list_runs(
        self, status: RunStatus | None = None, limit: int = 100, *, owner: str | None = None
    ) -> list[Run]:
        return await self._bus.backend.list_runs(status=status, owner=owner, limit=limit)

    async def start_run(self, run_id: str) -> Run:
        """ACCEPTED -> RUNNING, then the `started` event (sequence 0)."""
        run = await self._bus.backend.start_run(run_id)
        context = self._contexts.get(run_id)
        if context is not None:
            if isinstance(self._bus.backend, LeasedBackend):
                await self._bus.backend.renew_lease(run_id, self.instance_id, self._lease_ms)
                guard = asyncio.create_task(self._guard(run_id, context, self._bus.backend))
                self._guards.add(guard)
                guard.add_done_callback(self._guards.discard)
            await context.emit_started()
        return run

    @property
    def _lease_ms(self) -> int:
        return int(self._lease_seconds * 1000)

    async def _guard(self, run_id: str, context: StreamContext, backend: LeasedBackend) -> None:
        """While this instance runs the agent: renew the lease, and stop the agent when the
        run was ended elsewhere (DELETE on another instance, or an orphan sweep)."""
        while not context.closed:
            await asyncio.sleep(self._check_interval)
            try:
                await backend.renew_lease(run_id, self.instance_id, self._lease_ms)
                run = await backend.get_run(run_id)
            except BackendError as exc:
                _stop_if_cancelled(exc)
                log.warning("cannot renew the lease of run %s: %s", run_id, exc)
                continue
            _stop_if_cancelled()
            if (run is None or run.terminal) and not context.closed:
                status = run.status.value if run else "deleted"
                context.cancel(f"run ended elsewhere ({status})")
                self._contexts.pop(run_id, None)
                return

    def start_reaper(self, interval: float = 2.0) -> None:
        """Periodically end runs whose instance died (lease lapsed) as FAILED with code
        `RUN_ORPHANED`; any instance may do it, the terminal transition is atomic."""
        backend = self._bus.backend
        if isinstance(backend, LeasedBackend) and self._reaper is None:
            self._reaper = asyncio.create_task(self._reap(backend, interval))

    async def _reap(self, backend: LeasedBackend, interval: float) -> None:
        # A run is declared orphaned only when its lease is missing on two sweeps in a row,
        # so a live owner gets a whole interval to renew (e.g. just after a Redis restart).
        suspects: set[str] = set()
        while True:
            await asyncio.sleep(interval)
            try:
                lapsed = set(await backend.orphaned_runs())
            except BackendError as exc:
                _stop_if_cancelled(exc)
                log.warning("orphan sweep failed: %s", exc)
                continue
            _stop_if_cancelled()
            orphans, suspects = lapsed & suspects, lapsed
            for run_id in sorted(orphans):
                with contextlib.suppress(RunFinishedError, RunNotFoundError):
                    await self.end_orphaned(run_id)

    async def end_orphaned(self, run_id: str) -> None:
        """End a run whose instance died as FAILED, with an `error` event of code
        `RUN_ORPHANED`. Raises `RunFinishedError` when it ended meanwhile."""
        await self._bus.finish(
            run_id,
            RunStatus.FAILED,
            functools.partial(_orphaned_event, run_id),
            error={"message": ORPHANED_MESSAGE, "code": "RUN_ORPHANED", "details": None},
        )
        log.warning("run %s was orphaned: marked FAILED (RUN_ORPHANED)", run_id)

    def attach(self, run_id: str) -> StreamContext:
        """The context of a run another instance created and queued, to run it here."""
        context = self._contexts[run_id] = self._new_context(run_id)
        return context

    async def begin_attempt(self, run_id: str) -> tuple[StreamContext, int]:
        """Take over a RUNNING run whose worker died (a shared backend's queue): its next
        attempt starts here, the log going on after its last event with a `started` event
        that carries the attempt number. Returns the run's context and the attempt."""
        backend = self._bus.backend
        if not isinstance(backend, AttemptingBackend):
            raise TypeError(f"the {backend.name} backend has no run queue")
        attempt, next_sequence = await backend.begin_attempt(
            run_id, self.instance_id, self._lease_ms
        )
        context = self._new_context(run_id, next_sequence)
        self._contexts[run_id] = context
        guard = asyncio.create_task(self._guard(run_id, context, backend))
        self._guards.add(guard)
        guard.add_done_callback(self._guards.discard)
        await context.emit_started(attempt=attempt)
        return context, attempt

    def _new_context(self, run_id: str, first_sequence: int = 0) -> StreamContext:
        return StreamContext(
            run_id,
            self._bus,
            agent_name=self._agent_name,
            framework=self._framework,
            events_filter=self._events_filter,
            first_sequence=first_sequence,
        )

    async def close(self) -> None:
        """Stop the reaper and the lease guards of this manager."""
        tasks = [*self._guards, *([self._reaper] if self._reaper else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._reaper = None

    async def set_result(
        self,
        run_id: str,
        output: Any,
        latency_seconds: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Run:
        context = self._require_context(run_id)
        try:
            await context.emit_complete(output, latency_seconds, metadata)
        finally:
            self._contexts.pop(run_id, None)
        return await self._fetch(run_id)

    async def set_error(
        self,
        run_id: str,
        error: str,
        code: str = "INTERNAL_ERROR",
        details: dict[str, Any] | None = None,
    ) -> Run:
        context = self._require_context(run_id)
        try:
            await context.emit_error(error, code, details)
        finally:
            self._contexts.pop(run_id, None)
        return await self._fetch(run_id)

    async def cancel_run(self, run_id: str, reason: str | None = None) -> Run:
        """End the run as CANCELLED and stop its agent. Raises `RunFinishedError` when the
        run already ended, `RunNotFoundError` when it does not exist."""
        context = self._contexts.get(run_id)
        if context is not None:
            await context.flush()
        run, _ = await self._bus.finish(
            run_id,
            RunStatus.CANCELLED,
            lambda seq: CancelledEvent(run_id=run_id, sequence=seq, reason=reason),
        )
        if context is not None:
            context.cancel(reason)
            self._contexts.pop(run_id, None)
        return run

    def forget(self, run_id: str) -> None:
        """Drop the local context of a run (after its executor ended)."""
        self._contexts.pop(run_id, None)

    async def is_terminal(self, run_id: str) -> bool:
        run = await self.get_run(run_id)
        return run is None or run.terminal

    async def get_stats(self) -> dict[str, int]:
        runs = await self.list_runs(limit=1_000_000)
        stats = {status.value: 0 for status in RunStatus}
        for run in runs:
            stats[run.status.value] += 1
        stats["total"] = len(runs)
        return stats

    def _require_context(self, run_id: str) -> StreamContext:
        context = self._contexts.get(run_id)
        if context is None:
            raise RunNotFoundError(run_id)
        return context

    async def _fetch(self, run_id: str) -> Run:
        run = await self.get_run(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return run
