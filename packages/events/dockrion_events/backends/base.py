"""The run-log interface every backend implements (memory, Redis).

A run is an append-only, sequence-numbered log of events plus a state record beside it.
Non-terminal events are appended by the run's single producer with the sequences it
assigned; the backend rejects gaps. A terminal event is appended by `finish_run`, which
takes the next sequence itself and changes the status in the same atomic step, so a cancel
racing a completion ends in exactly one state, in the log and in the record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import (
    BackendConnectionError,
    BackendError,
    BackendPublishError,
    BackendSubscribeError,
)
from ..models import BaseEvent
from ..record import EventRecord
from ..runs import Run, RunStatus

__all__ = [
    "USAGE_FIELDS",
    "USAGE_RETENTION_DAYS",
    "BackendConnectionError",
    "BackendError",
    "BackendPublishError",
    "BackendSubscribeError",
    "EventBackend",
    "TerminalEventFactory",
    "created_us",
]

TerminalEventFactory = Callable[[int], BaseEvent]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def created_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly: the order of runs in listings."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


# How long a day's usage per owner is kept.
USAGE_RETENTION_DAYS = 35
USAGE_FIELDS = ("input_tokens", "output_tokens", "cost", "runs")


class EventBackend(ABC):
    """Where runs and their event logs live."""

    name: str = "unknown"

    @abstractmethod
    async def create_run(self, run: Run) -> None:
        """Store a new run. Raises `RunExistsError` when the id is taken."""

    @abstractmethod
    async def get_run(self, run_id: str) -> Run | None: ...

    @abstractmethod
    async def list_runs(
        self, *, status: RunStatus | None = None, owner: str | None = None, limit: int = 100
    ) -> list[Run]:
        """Newest first."""

    @abstractmethod
    async def start_run(self, run_id: str) -> Run:
        """ACCEPTED -> RUNNING. Raises `RunFinishedError` if the run already ended."""

    @abstractmethod
    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        """Append non-terminal events whose sequences continue the log exactly.

        Raises `RunFinishedError` when the run has ended (its producer should stop) and
        `RunNotFoundError` for an unknown run.
        """

    @abstractmethod
    async def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        build: TerminalEventFactory,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> tuple[Run, EventRecord]:
        """Atomically append the terminal event `build(next_sequence)` and set `status`.

        Raises `RunFinishedError` if the run already ended: exactly one terminal event.
        """

    @abstractmethod
    async def read(
        self, run_id: str, after: int, timeout: float | None = None
    ) -> tuple[list[EventRecord], bool]:
        """Events with sequence > `after`, waiting up to `timeout` s for the first one.

        Returns `(records, finished)`; `finished` is true when the run has ended and nothing
        follows the records returned. An empty list with `finished` false means the wait
        timed out. Raises `EventsExpiredError` when `after + 1` is no longer retained and
        `RunNotFoundError` for an unknown run.
        """

    @abstractmethod
    async def delete_run(self, run_id: str) -> None: ...

    @abstractmethod
    async def claim_thread(self, thread_id: str, owner: str, ttl_seconds: float) -> str:
        """Make `owner` the owner of the conversation `thread_id` unless someone already is;
        returns the owner after the call (compare it with `owner`). Each claim keeps the
        thread's ownership for another `ttl_seconds` (`math.inf`: until released). Atomic
        across every instance that shares the backend.
        """

    @abstractmethod
    async def thread_owner(self, thread_id: str) -> str | None:
        """Who owns the conversation `thread_id` (None: nobody, or the ownership expired);
        unlike `claim_thread`, claims nothing."""

    @abstractmethod
    async def release_thread(self, thread_id: str, owner: str) -> None:
        """Forget that `owner` owns `thread_id` (the thread was deleted): anyone may claim
        it again. Does nothing when someone else owns it."""

    @abstractmethod
    async def take_thread_turn(
        self, thread_id: str, holder: str, ttl_seconds: float, *, wait: bool
    ) -> bool:
        """One run at a time per thread, across every instance that shares the backend:
        True when `holder` holds the thread's turn for the next `ttl_seconds` (taken, or
        renewed when it already held it). A free turn goes to the first in line; with
        `wait`, a holder that did not get it joins the line (once), and stays in it for
        `ttl_seconds` after each call, so a waiter that stops asking (its instance died)
        leaves the line by itself.
        """

    @abstractmethod
    async def end_thread_turn(self, thread_id: str, holder: str) -> None:
        """Give the thread's turn back if `holder` holds it, and leave its line."""

    @abstractmethod
    async def thread_turn_holder(self, thread_id: str) -> str | None:
        """Who holds the thread's turn now (None: the thread is free)."""

    @abstractmethod
    async def claim_resume(self, run_id: str, ttl_seconds: float) -> bool:
        """Record that the interrupt `run_id` stopped at is being answered: True for the
        first claim only, False for every later one within `ttl_seconds`, atomically across
        every instance that shares the backend (two resumes sent at once start one run)."""

    @abstractmethod
    async def release_resume(self, run_id: str) -> None:
        """Undo `claim_resume` (the resumed run could not be started)."""

    async def add_usage(self, owner: str, day: str, usage: dict[str, float]) -> None:
        """Add `usage` (fields `input_tokens`, `output_tokens`, `cost`, `runs`) to what
        `owner` used on `day` (a UTC date, `YYYY-MM-DD`), atomically across every instance
        that shares the backend. Kept for `USAGE_RETENTION_DAYS` days."""
        raise NotImplementedError(f"the {self.name} backend keeps no usage")

    async def read_usage(self, day: str, owner: str | None = None) -> dict[str, dict[str, float]]:
        """What each owner used on `day` (owner -> fields); only `owner`'s when given (an
        owner that used nothing is absent)."""
        raise NotImplementedError(f"the {self.name} backend keeps no usage")

    @abstractmethod
    async def owner_runs(
        self, owner: str | None, *, limit: int, before: tuple[int, str] | None = None
    ) -> list[tuple[int, Run]]:
        """At most `limit` of the runs `owner` created, newest first, each with its place
        in that order (`(created_us, run_id)`, both descending), only those strictly after
        the cursor `before` when given: an index per owner, so runs created meanwhile never
        move a later page."""

    @abstractmethod
    async def stop_thread_turn(
        self, thread_id: str, holder: str, reason: str, ttl_seconds: float
    ) -> None:
        """Ask `holder`, which holds the thread's turn or waits for it, to stop for
        `reason` (a new run on the thread under multitask_strategy interrupt or rollback);
        the request lasts `ttl_seconds`. Seen on every instance through
        `thread_turn_stopping`."""

    @abstractmethod
    async def thread_turn_stopping(self, thread_id: str, holder: str) -> str | None:
        """Why `holder` was asked to stop (`stop_thread_turn`), or None."""

    @abstractmethod
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
        """Write (or rewrite) what the thread `thread_id` keeps of the run `run_id`: `entry`,
        a JSON object, ordered by `created_us` (when the run was created, in microseconds
        since the epoch). The thread keeps its `max_runs` newest runs; its whole record
        expires `ttl_seconds` after the last write (None: kept until deleted). Shared by
        every instance that shares the backend."""

    @abstractmethod
    async def thread_run_entries(
        self, thread_id: str, *, limit: int, before: tuple[int, str] | None = None
    ) -> list[dict[str, Any]]:
        """At most `limit` of the thread's run entries, newest first (by `created_us`, then
        by run id, both descending), only those strictly after the cursor `before`
        (`(created_us, run_id)` of the last entry of the previous page) when given."""

    @abstractmethod
    async def delete_thread_record(self, thread_id: str) -> None:
        """Forget every run entry of the thread."""

    async def ping(self) -> bool:
        """True when the backend answers (used by readiness checks)."""
        return True

    async def check(self) -> None:
        """Raises `BackendConnectionError` with the reason when the backend does not answer."""
        if not await self.ping():
            raise BackendConnectionError(f"the {self.name} backend does not answer", self.name)

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; pending reads end."""
