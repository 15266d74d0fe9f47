"""Runs and their logs in this process's memory: zero set-up, one process.

Memory is bounded: each log keeps at most about `max_events_per_run` events (the oldest go
first), a finished run is forgotten `ttl_seconds` after it ended, and at most `max_runs`
runs are kept: a new run makes room by forgetting the run that finished first. Runs still
going are never forgotten; when all `max_runs` are going, a new one is refused. Thread
ownerships and resume claims are at most `max_threads` each, kept in `ExpiringClaims`:
expired ones leave as time passes, and a claim costs the same however many are held.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..errors import (
    BackendError,
    BackendPublishError,
    EventsExpiredError,
    RunExistsError,
    RunFinishedError,
    RunNotFoundError,
)
from ..record import EventRecord
from ..runs import Run, RunStatus
from .base import EventBackend, TerminalEventFactory, created_us
from .expiring_claims import ExpiringClaims
from .usage_ledger import UsageLedger

__all__ = ["ExpiringClaims", "InMemoryBackend"]


def _place(run: Run) -> tuple[int, str]:
    return created_us(run.created_at), run.run_id


class _RunLog:
    __slots__ = ("_changed", "events", "first", "run")

    def __init__(self, run: Run) -> None:
        self.run = run
        self.events: list[EventRecord] = []
        self.first = 0  # sequence of events[0]
        self._changed: asyncio.Event | None = None

    @property
    def next_sequence(self) -> int:
        return self.first + len(self.events)

    def changed(self) -> asyncio.Event:
        """An event set by the next change; made only when a reader has to wait."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()


class _Turn:
    """A thread's turn: the run holding it until `expiry` (monotonic), and the runs waiting
    for it in arrival order, each with the time it stops counting unless it asks again."""

    __slots__ = ("expiry", "holder", "waiting")

    def __init__(self) -> None:
        self.holder: str | None = None
        self.expiry = 0.0
        self.waiting: dict[str, float] = {}


class InMemoryBackend(EventBackend):
    name = "memory"

    def __init__(
        self,
        max_events_per_run: int = 10_000,
        ttl_seconds: float = 3600.0,
        *,
        max_runs: int | None = None,
        max_threads: int = 200_000,
    ) -> None:
        if max_events_per_run < 1:
            raise ValueError("max_events_per_run must be at least 1")
        if max_runs is not None and max_runs < 1:
            raise ValueError("max_runs must be at least 1")
        self._threads = ExpiringClaims(max_threads)  # thread id -> its owner
        self._resumed = ExpiringClaims(max_threads)  # run id whose interrupt is answered
        self._turns: dict[str, _Turn] = {}  # thread id -> who holds its turn, who waits
        # thread id -> run id -> (created µs, entry); each thread's record expires as a whole
        self._records: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {}
        self._recorded = ExpiringClaims(max_threads, on_drop=self._drop_record)
        self._stopping = ExpiringClaims(max_threads)  # "thread holder" asked to stop
        self.max_events_per_run = max_events_per_run
        self.ttl_seconds = ttl_seconds
        self.max_runs = max_runs
        self._runs: dict[str, _RunLog] = {}
        # owner -> the places of its runs, (created µs, run id), oldest first
        self._owned: dict[str, list[tuple[int, str]]] = {}
        # Finished runs in the order they finished, with the time each one expires. The
        # retention is the same for every run, so this is also the order of expiry.
        self._finished: OrderedDict[str, float] = OrderedDict()
        self._closed = False
        self._usage = UsageLedger()

    async def add_usage(self, owner: str, day: str, usage: dict[str, float]) -> None:
        self._usage.add(owner, day, usage)

    async def read_usage(self, day: str, owner: str | None = None) -> dict[str, dict[str, float]]:
        return self._usage.read(day, owner)

    # --- run state ---------------------------------------------------------------------

    async def create_run(self, run: Run) -> None:
        self._sweep()
        if run.run_id in self._runs:
            raise RunExistsError(run.run_id)
        if self.max_runs is not None and len(self._runs) >= self.max_runs:
            if not self._finished:
                raise BackendError(
                    f"all {self.max_runs} runs the memory backend may keep are still going "
                    "(streaming.memory.max_runs); try again when one has finished",
                    self.name,
                )
            oldest, _ = self._finished.popitem(last=False)
            self._forget(oldest)
        self._runs[run.run_id] = _RunLog(run.model_copy())
        bisect.insort(self._owned.setdefault(run.owner or "", []), _place(run))

    async def get_run(self, run_id: str) -> Run | None:
        self._sweep()
        log = self._runs.get(run_id)
        return log.run.model_copy() if log else None

    async def list_runs(
        self, *, status: RunStatus | None = None, owner: str | None = None, limit: int = 100
    ) -> list[Run]:
        self._sweep()
        runs = [
            log.run
            for log in self._runs.values()
            if (status is None or log.run.status == status)
            and (owner is None or log.run.owner == owner)
        ]
        runs.sort(key=lambda run: run.created_at, reverse=True)
        return [run.model_copy() for run in runs[:limit]]

    async def start_run(self, run_id: str) -> Run:
        log = self._log(run_id)
        if log.run.terminal:
            raise RunFinishedError(run_id, log.run.status.value)
        if log.run.status == RunStatus.ACCEPTED:
            log.run.status = RunStatus.RUNNING
            log.run.started_at = datetime.now(UTC)
        return log.run.model_copy()

    async def delete_run(self, run_id: str) -> None:
        self._finished.pop(run_id, None)
        self._forget(run_id)

    # --- the log -----------------------------------------------------------------------

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        if not records:
            return
        log = self._log(run_id)
        if log.run.terminal:
            raise RunFinishedError(run_id, log.run.status.value)
        expected = log.next_sequence
        for offset, record in enumerate(records):
            if record.sequence != expected + offset or record.terminal:
                raise BackendPublishError(
                    f"run '{run_id}': expected non-terminal event {expected + offset}, got "
                    f"{record.type} {record.sequence}",
                    self.name,
                )
        log.events.extend(records)
        self._trim(log)
        log.run.last_sequence = log.next_sequence - 1
        log.notify()

    async def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        build: TerminalEventFactory,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> tuple[Run, EventRecord]:
        log = self._log(run_id)
        run = log.run
        if run.terminal:
            raise RunFinishedError(run_id, run.status.value)
        if not status.terminal:
            raise ValueError(f"finish_run needs a terminal status, got {status}")
        record = EventRecord.from_event(build(log.next_sequence))
        log.events.append(record)
        run.status = status
        run.completed_at = datetime.now(UTC)
        run.output = output
        run.error = error
        run.last_sequence = record.sequence
        self._trim(log)
        self._finished[run_id] = time.monotonic() + self.ttl_seconds
        log.notify()
        return run.model_copy(), record

    async def read(
        self, run_id: str, after: int, timeout: float | None = None
    ) -> tuple[list[EventRecord], bool]:
        log = self._log(run_id)
        if log.next_sequence <= after + 1:
            if log.run.terminal:
                return [], True
            changed = log.changed()
            # Many readers may share the log: the extra hop of `wait_for` lets a few events
            # gather for each wake-up (one write each), which fan-out needs.
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except TimeoutError:
                return [], False
            if self._runs.get(run_id) is not log:
                raise RunNotFoundError(run_id)
        start = after + 1
        if start < log.first:
            raise EventsExpiredError(run_id, start, log.first)
        records = log.events[start - log.first :]
        # Every record up to the end was returned, so a finished run ends here.
        return records, log.run.terminal

    # --- housekeeping ------------------------------------------------------------------

    def _log(self, run_id: str) -> _RunLog:
        log = self._runs.get(run_id)
        if log is None:
            raise RunNotFoundError(run_id)
        return log

    def _trim(self, log: _RunLog) -> None:
        # Trim in slices of a quarter so appends stay amortised O(1).
        excess = len(log.events) - self.max_events_per_run
        if excess > 0 and (excess >= self.max_events_per_run // 4 or log.run.terminal):
            del log.events[:excess]
            log.first += excess

    def _sweep(self) -> None:
        now = time.monotonic()
        finished = self._finished
        while finished:
            run_id, expires = next(iter(finished.items()))
            if expires > now:
                break
            del finished[run_id]
            self._forget(run_id)

    def _forget(self, run_id: str) -> None:
        log = self._runs.pop(run_id, None)
        if log is not None:
            log.notify()
            owned = self._owned.get(log.run.owner or "", [])
            place = _place(log.run)
            index = bisect.bisect_left(owned, place)
            if index < len(owned) and owned[index] == place:
                del owned[index]
            if not owned:
                self._owned.pop(log.run.owner or "", None)

    async def owner_runs(
        self, owner: str | None, *, limit: int, before: tuple[int, str] | None = None
    ) -> list[tuple[int, Run]]:
        self._sweep()
        owned = self._owned.get(owner or "", [])
        end = len(owned) if before is None else bisect.bisect_left(owned, before)
        places = owned[max(0, end - limit) : end][::-1]
        return [(created, self._runs[name].run.model_copy()) for created, name in places]

    def run_count(self) -> int:
        return len(self._runs)

    async def close(self) -> None:
        self._closed = True
        for log in self._runs.values():
            log.notify()

    async def claim_resume(self, run_id: str, ttl_seconds: float) -> bool:
        now = time.monotonic()
        if self._resumed.owner(run_id, now) is not None:
            return False
        if not self._resumed.put(run_id, "", now + ttl_seconds, now):
            raise self._full("resume claims")
        return True

    async def release_resume(self, run_id: str) -> None:
        self._resumed.pop(run_id)

    async def thread_owner(self, thread_id: str) -> str | None:
        return self._threads.owner(thread_id, time.monotonic())

    async def release_thread(self, thread_id: str, owner: str) -> None:
        if self._threads.owner(thread_id, time.monotonic()) == owner:
            self._threads.pop(thread_id)

    async def take_thread_turn(
        self, thread_id: str, holder: str, ttl_seconds: float, *, wait: bool
    ) -> bool:
        now = time.monotonic()
        turn = self._turns.setdefault(thread_id, _Turn())
        for waiter, deadline in list(turn.waiting.items()):
            if deadline < now:
                del turn.waiting[waiter]  # it stopped asking
        if turn.holder == holder or turn.expiry <= now:
            first = next(iter(turn.waiting), holder)
            if turn.holder == holder or first == holder:
                turn.holder, turn.expiry = holder, now + ttl_seconds
                turn.waiting.pop(holder, None)
                return True
        if wait:
            turn.waiting[holder] = now + ttl_seconds  # a dict keeps arrival order
        return False

    async def end_thread_turn(self, thread_id: str, holder: str) -> None:
        turn = self._turns.get(thread_id)
        if turn is None:
            return
        turn.waiting.pop(holder, None)
        if turn.holder == holder:
            turn.holder, turn.expiry = None, 0.0
        if turn.holder is None and not turn.waiting:
            del self._turns[thread_id]

    async def thread_turn_holder(self, thread_id: str) -> str | None:
        turn = self._turns.get(thread_id)
        if turn is None or turn.expiry <= time.monotonic():
            return None
        return turn.holder

    async def claim_thread(self, thread_id: str, owner: str, ttl_seconds: float) -> str:
        now = time.monotonic()
        current = self._threads.owner(thread_id, now)
        if current is not None and current != owner:
            return current
        if not self._threads.put(thread_id, owner, now + ttl_seconds, now):
            raise self._full("thread ownerships")
        return owner

    def _full(self, what: str) -> BackendError:
        return BackendError(
            f"the memory backend holds {self._threads.limit} {what}, none expired yet "
            "(streaming.memory.max_threads); use the Redis backend to keep more",
            self.name,
        )

    async def stop_thread_turn(
        self, thread_id: str, holder: str, reason: str, ttl_seconds: float
    ) -> None:
        now = time.monotonic()
        if not self._stopping.put(f"{thread_id} {holder}", reason, now + ttl_seconds, now):
            raise self._full("stop requests")

    async def thread_turn_stopping(self, thread_id: str, holder: str) -> str | None:
        return self._stopping.owner(f"{thread_id} {holder}", time.monotonic())

    # --- thread records ----------------------------------------------------------------

    def _drop_record(self, thread_id: str) -> None:
        self._records.pop(thread_id, None)

    async def record_thread_run(
        self,
        thread_id: str,
        run_id: str,
        entry: dict[str, Any],
        *,
        created_us: int,
        ttl_seconds: float | None,
        max_runs: int,
    ) -> None:
        now = time.monotonic()
        expiry = math.inf if ttl_seconds is None else now + ttl_seconds
        if not self._recorded.put(thread_id, "", expiry, now):
            raise self._full("thread records")
        runs = self._records.setdefault(thread_id, {})
        runs[run_id] = (created_us, dict(entry))
        if len(runs) > max_runs:
            oldest = sorted(runs, key=lambda name: (runs[name][0], name))
            for name in oldest[: len(runs) - max_runs]:
                del runs[name]

    async def thread_run_entries(
        self, thread_id: str, *, limit: int, before: tuple[int, str] | None = None
    ) -> list[dict[str, Any]]:
        self._recorded.expire(time.monotonic())
        runs = self._records.get(thread_id, {})
        order = sorted(((created, name) for name, (created, _) in runs.items()), reverse=True)
        if before is not None:
            order = [key for key in order if key < before]
        return [dict(runs[name][1]) for _, name in order[:limit]]

    async def delete_thread_record(self, thread_id: str) -> None:
        self._recorded.pop(thread_id)
        self._records.pop(thread_id, None)
