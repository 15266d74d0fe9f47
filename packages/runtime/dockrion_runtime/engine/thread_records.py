"""What a thread keeps of its runs, for every agent and every way a run comes in
(`/invoke`, `/invoke/stream`, the WebSocket, background runs, AG-UI): each run's input,
status, output or error and times. The record lives in the events backend, so every
instance sharing it sees the same thread; it keeps the newest `THREAD_RECORD_RUNS` runs of
a thread, for as long as the thread's retention says (`threads.ttl_seconds` after its last
run; unset, until the thread is deleted). What is stored is redacted with the Dockfile's
patterns first, and a value larger than `MAX_STORED_CHARS` (in JSON) is kept as a note of
its size."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from dockrion_events import BackendError, EventBackend, RunStatus

from ..agents import RunOptions
from .policies import SafetyPolicies

__all__ = [
    "MAX_STORED_CHARS",
    "THREAD_RECORD_RUNS",
    "RecordedEnding",
    "RunRecord",
    "ThreadRecords",
    "created_us",
]

log = logging.getLogger("dockrion.runtime")

# The most runs a thread keeps (the oldest leave first).
THREAD_RECORD_RUNS = 100
# The largest input, output or error a thread keeps of a run, in JSON characters.
MAX_STORED_CHARS = 64 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def created_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly: the order of runs in listings."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


class ThreadRecords:
    """Writes and reads the record of threads in the events backend."""

    def __init__(
        self,
        policies: SafetyPolicies,
        ttl_seconds: float | None,
        backend: Callable[[], EventBackend],
    ) -> None:
        self.policies = policies
        self.ttl_seconds = ttl_seconds
        self._backend = backend  # where threads live (the runs' backend, or this process)

    @property
    def backend(self) -> EventBackend:
        return self._backend()

    def stored(self, value: Any) -> Any:
        """`value` as a thread keeps it: redacted (never refused: it is stored, not sent),
        and bounded in size."""
        redacted = self.policies.redact_stored(value)
        try:
            size = len(json.dumps(redacted, ensure_ascii=False, default=str))
        except (TypeError, ValueError):
            return {"_not_stored": "not JSON"}
        if size > MAX_STORED_CHARS:
            return {"_not_stored": f"{size} characters of JSON (more than {MAX_STORED_CHARS})"}
        return redacted

    async def open(
        self,
        options: RunOptions | None,
        run_id: str,
        via: str,
        payload: Any,
        created: datetime | None = None,
    ) -> RunOptions | None:
        """The options of a run on a thread, with its record written (ACCEPTED); the
        options as they are for a run without a thread."""
        if options is None or options.thread_id is None:
            return options
        given = {"resume": options.resume} if options.resuming else payload
        turn = options.turn
        record = RunRecord(
            self,
            options.thread_id,
            run_id,
            via,
            self.stored(given),
            getattr(turn, "holder", None),
            created or datetime.now(UTC),
        )
        await record.write()
        return dataclasses.replace(options, record=record)

    async def entries(
        self, thread_id: str, limit: int, before: tuple[int, str] | None = None
    ) -> list[dict[str, Any]]:
        return await self.backend.thread_run_entries(thread_id, limit=limit, before=before)

    async def delete(self, thread_id: str) -> None:
        await self.backend.delete_thread_record(thread_id)


class RunRecord:
    """One run's entry in its thread's record: written when the run is accepted, when it
    takes the thread's turn, and when it ends, before its terminal event (a client that saw
    the run end reads the thread with it). A backend that fails is logged, never fatal to
    the run."""

    def __init__(
        self,
        records: ThreadRecords,
        thread_id: str,
        run_id: str,
        via: str,
        given: Any,
        holder: str | None,
        created: datetime,
    ) -> None:
        self.records = records
        self.thread_id = thread_id
        self.ended_with: str | None = None
        self.entry: dict[str, Any] = {
            "run_id": run_id,
            "thread_id": thread_id,
            "via": via,
            "status": RunStatus.ACCEPTED.value,
            "input": given,
            "output": None,
            "error": None,
            "created_at": created.isoformat(),
            "started_at": None,
            "completed_at": None,
            "holder": holder,
            "created_us": created_us(created),
        }

    async def write(self) -> None:
        try:
            await self.records.backend.record_thread_run(
                self.thread_id,
                self.entry["run_id"],
                self.entry,
                created_us=self.entry["created_us"],
                ttl_seconds=self.records.ttl_seconds,
                max_runs=THREAD_RECORD_RUNS,
            )
        except BackendError as exc:
            log.warning("thread %s: its record was not written: %s", self.thread_id, exc)

    async def started(self) -> None:
        self.entry["status"] = RunStatus.RUNNING.value
        self.entry["started_at"] = datetime.now(UTC).isoformat()
        await self.write()

    async def ended(
        self, status: RunStatus, output: Any = None, error: dict[str, Any] | None = None
    ) -> None:
        """Once: the first end wins (a cancellation racing a completion)."""
        if self.ended_with is not None:
            return
        self.ended_with = status.value
        stored = self.records.stored
        self.entry.update(
            status=status.value,
            output=stored(output) if output is not None else None,
            error=stored(error) if error is not None else None,
            completed_at=datetime.now(UTC).isoformat(),
        )
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.write())  # a cancelled run still says so

    async def failed(self, exc: BaseException) -> None:
        """The end of a run that raised `exc` (`POST /invoke`, which has no log)."""
        if isinstance(exc, asyncio.CancelledError):
            await self.ended(RunStatus.CANCELLED)
            return
        code = getattr(exc, "code", "INTERNAL_ERROR")
        message = getattr(exc, "message", None) or type(exc).__name__
        await self.ended(RunStatus.FAILED, error={"message": message, "code": code})


class RecordedEnding:
    """A run's `RunEnding` (`StreamContext.reserve_terminal_events`) that writes the run's
    end into its thread's record first."""

    __slots__ = ("_ending", "_record")

    def __init__(self, ending: Any, record: RunRecord) -> None:
        self._ending = ending
        self._record = record

    async def complete(
        self,
        output: Any,
        latency_seconds: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        await self._record.ended(RunStatus.COMPLETED, output)
        await self._ending.complete(output, latency_seconds, metadata)

    async def error(
        self, error: str, code: str = "INTERNAL_ERROR", details: dict[str, Any] | None = None
    ) -> None:
        problem = {"message": error, "code": code, "details": details}
        await self._record.ended(RunStatus.FAILED, error=problem)
        await self._ending.error(error, code, details)

    async def cancelled(self, reason: str | None = None) -> None:
        await self._record.ended(RunStatus.CANCELLED, error={"reason": reason})
        await self._ending.cancelled(reason)
