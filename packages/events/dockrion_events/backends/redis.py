"""Runs and their logs in Redis, so any number of runtime processes share every run.

The key layout and the Lua scripts are in `redis_layout.py`: appends and terminal
transitions are atomic scripts over one run's keys. Reading is `XRANGE` after the cursor;
waiting for more is one `XREAD BLOCK` per run per process (`redis_tail.py`), fanned out
in-process to every local subscriber of that run. The index of runs and the set of running
runs, which every process shares, are kept by `redis_index.py`.

One Redis server, a Redis Cluster (`cluster=True`, through redis-py's cluster client), or
a primary found through Redis Sentinel (`sentinel=`). On a cluster every key of a run
shares the run's hash tag, so each script and each blocking read stays on one node, and
nothing else spans keys of different slots in one command.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

try:
    from redis.exceptions import RedisClusterException, RedisError

    from .redis_clients import SentinelService, connect, redis_errors
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "RedisBackend needs the redis package: pip install 'dockrion-events[redis]'"
    ) from exc

from .._waiting import wait_set
from ..errors import (
    BackendPublishError,
    EventsExpiredError,
    EventsLostError,
    RunExistsError,
    RunFinishedError,
    RunNotFoundError,
)
from ..record import EventRecord
from ..runs import Run, RunStatus
from . import redis_usage
from .base import EventBackend, TerminalEventFactory, created_us
from .redis_index import RunIndex
from .redis_layout import SCRIPTS, Keys, decode_entries, run_from_state, sequence_of, text
from .redis_queue import RedisRunQueue
from .redis_tail import Tail
from .redis_threads import RedisThreadRecords

__all__ = ["RedisBackend"]


# The most records one read of the past returns.
_RANGE = 2048


class RedisBackend(RedisThreadRecords, EventBackend):
    """`EventBackend` on Redis (7+), one server or a cluster. Requires the `redis` extra.

    With `cluster=True`, `url` names any node of a Redis Cluster (the others are
    discovered) and `connection_pool_size` bounds connections per node (at least 100:
    redis-py's cluster client fails a command instead of waiting when they are all busy).

    With `sentinel`, the primary is the one the Sentinels name (`url` is not used): each
    new connection asks them, and commands sent while a failover is under way fail with
    `BackendConnectionError` (producers buffer and retry, readers resume).
    """

    name = "redis"
    # A failover to a replica that had not received them loses acknowledged events.
    may_lose_events = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379",
        stream_ttl_seconds: int = 3600,
        max_events_per_run: int = 1000,
        connection_pool_size: int = 10,
        *,
        key_prefix: str = "dockrion",
        block_ms: int = 2000,
        cluster: bool = False,
        sentinel: SentinelService | None = None,
    ) -> None:
        if cluster and sentinel is not None:
            raise ValueError("a Redis Cluster or a Sentinel-watched primary, not both")
        self.url = url if sentinel is None else sentinel.url
        self.stream_ttl_seconds = stream_ttl_seconds
        self.max_events_per_run = max_events_per_run
        self.key_prefix = key_prefix
        self._block_ms = block_ms
        self.cluster = cluster
        # redis-py types replies as unions over protocol versions; we read RESP2 replies and
        # convert them where they are used, so the clients are typed loosely on purpose.
        self._connections = connect(url, connection_pool_size, cluster, sentinel)
        self._client: Any = self._connections.client
        self._blocking: Any = self._connections.blocking
        self._keys = Keys(key_prefix)
        self._scripts = {
            name: self._client.register_script(source) for name, source in SCRIPTS.items()
        }
        self._tails: dict[str, Tail] = {}
        self._index = RunIndex(self._client, self._keys, stream_ttl_seconds)

    def _errors(self, doing: str) -> Any:
        return redis_errors(self.url, doing, self.name)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, RedisClusterException, OSError):
            return False

    async def check(self) -> None:
        """Raises `BackendConnectionError` with the reason when Redis does not answer."""
        with self._errors("connecting"):
            await self._client.ping()

    # --- usage ---------------------------------------------------------------------------

    async def add_usage(self, owner: str, day: str, usage: dict[str, float]) -> None:
        with self._errors("recording usage"):
            await redis_usage.add_usage(self._client, self._keys, owner, day, usage)

    async def read_usage(self, day: str, owner: str | None = None) -> dict[str, dict[str, float]]:
        with self._errors("reading usage"):
            return await redis_usage.read_usage(self._client, self._keys, day, owner)

    # --- conversation threads --------------------------------------------------------------

    async def claim_thread(self, thread_id: str, owner: str, ttl_seconds: float) -> str:
        key = self._keys.thread(thread_id)
        # an infinite ttl: kept until released
        ttl_ms = max(1, int(ttl_seconds * 1000)) if math.isfinite(ttl_seconds) else None
        with self._errors("claiming a thread"):
            # SET NX GET: sets when absent, and returns the owner that was there before.
            previous = await self._client.set(key, owner, nx=True, px=ttl_ms, get=True)
            if previous is None or text(previous) == owner:
                if ttl_ms is None:
                    await self._client.persist(key)
                else:
                    await self._client.pexpire(key, ttl_ms)
                return owner
            return text(previous)

    async def thread_owner(self, thread_id: str) -> str | None:
        with self._errors("reading a thread's owner"):
            owner = await self._client.get(self._keys.thread(thread_id))
        return None if owner is None else text(owner)

    async def release_thread(self, thread_id: str, owner: str) -> None:
        with self._errors("releasing a thread"):
            await self._scripts["release_thread"](keys=[self._keys.thread(thread_id)], args=[owner])

    async def take_thread_turn(
        self, thread_id: str, holder: str, ttl_seconds: float, *, wait: bool
    ) -> bool:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        keys = self._keys.thread_turn(thread_id)
        with self._errors("taking a thread's turn"):
            taken = await self._scripts["take_turn"](
                keys=keys, args=[holder, ttl_ms, "1" if wait else "0"]
            )
        return bool(int(taken))

    async def end_thread_turn(self, thread_id: str, holder: str) -> None:
        keys = self._keys.thread_turn(thread_id)
        with self._errors("ending a thread's turn"):
            await self._scripts["end_turn"](keys=keys[:3], args=[holder])

    async def thread_turn_holder(self, thread_id: str) -> str | None:
        with self._errors("reading a thread's turn"):
            holder = await self._client.get(self._keys.thread_turn(thread_id)[0])
        return None if holder is None else text(holder)

    async def claim_resume(self, run_id: str, ttl_seconds: float) -> bool:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        with self._errors("claiming a resume"):
            return bool(await self._client.set(self._keys.resumed(run_id), 1, nx=True, px=ttl_ms))

    async def release_resume(self, run_id: str) -> None:
        with self._errors("releasing a resume"):
            await self._client.delete(self._keys.resumed(run_id))

    # --- run state -----------------------------------------------------------------------

    async def create_run(self, run: Run) -> None:
        static = run.model_dump(
            mode="json",
            include={"run_id", "created_at", "metadata", "owner", "agent_name", "framework"},
        )
        with self._errors("creating a run"):
            result = await self._scripts["create"](
                keys=[self._keys.state(run.run_id)],
                args=[json.dumps(static), self.stream_ttl_seconds],
            )
            if text(result) == "exists":
                raise RunExistsError(run.run_id)
            await self._index.touch(run.run_id)
            await self._index.own(run, created_us(run.created_at))

    async def get_run(self, run_id: str) -> Run | None:
        with self._errors("reading a run"):
            fields = await self._client.hgetall(self._keys.state(run_id))
        return run_from_state(fields) if fields else None

    async def list_runs(
        self, *, status: RunStatus | None = None, owner: str | None = None, limit: int = 100
    ) -> list[Run]:
        with self._errors("listing runs"):
            return await self._index.recent(status, owner, limit)

    async def owner_runs(
        self, owner: str | None, *, limit: int, before: tuple[int, str] | None = None
    ) -> list[tuple[int, Run]]:
        with self._errors("listing runs"):
            return await self._index.owned(owner or "", limit, before)

    async def start_run(self, run_id: str) -> Run:
        now = datetime.now(UTC).isoformat()
        with self._errors("starting a run"):
            result = await self._scripts["start"](
                keys=[self._keys.state(run_id)], args=[now, self.stream_ttl_seconds]
            )
            outcome = [text(item) for item in result]
            if outcome[0] == "missing":
                raise RunNotFoundError(run_id)
            if outcome[0] == "finished":
                raise RunFinishedError(run_id, outcome[1])
            await self._index.touch(run_id, running=True)
        run = await self.get_run(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return run

    async def delete_run(self, run_id: str) -> None:
        with self._errors("deleting a run"):
            await self._client.delete(
                self._keys.state(run_id), self._keys.log(run_id), self._keys.lease(run_id)
            )
            await self._index.remove(run_id)

    # --- the log -------------------------------------------------------------------------

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        if not records:
            return
        args: list[Any] = [self.max_events_per_run, records[0].sequence, self.stream_ttl_seconds]
        for offset, record in enumerate(records):
            if record.sequence != records[0].sequence + offset or record.terminal:
                raise BackendPublishError(
                    f"run '{run_id}': events must be contiguous and non-terminal", self.name
                )
            args += [record.type, record.data]
        with self._errors("appending events"):
            result = await self._scripts["append"](
                keys=[self._keys.state(run_id), self._keys.log(run_id)], args=args
            )
        outcome = [text(item) for item in result]
        if outcome[0] == "missing":
            raise RunNotFoundError(run_id)
        if outcome[0] == "finished":
            raise RunFinishedError(run_id, outcome[1])
        if outcome[0] == "gap":
            raise BackendPublishError(
                f"run '{run_id}': expected event {outcome[1]}, got {records[0].sequence}",
                self.name,
            )
        tail = self._tails.get(run_id)
        if tail is not None:
            tail.add_local(records)
        if outcome[0] == "lost":  # stored after a hole: the producer says what was lost
            raise EventsLostError(run_id, int(outcome[1]), records[0].sequence - 1, self.name)

    async def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        build: TerminalEventFactory,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> tuple[Run, EventRecord]:
        if not status.terminal:
            raise ValueError(f"finish_run needs a terminal status, got {status}")
        state = self._keys.state(run_id)
        while True:  # optimistic: retried when the producer appended meanwhile
            with self._errors("finishing a run"):
                fields = await self._client.hmget(state, ["status", "next"])
            if fields[0] is None:
                raise RunNotFoundError(run_id)
            if RunStatus(text(fields[0])).terminal:
                raise RunFinishedError(run_id, text(fields[0]))
            # the producer may place it past the log's end: the events between were lost
            record = EventRecord.from_event(build(int(fields[1])))
            with self._errors("finishing a run"):
                result = await self._scripts["finish"](
                    keys=[state, self._keys.log(run_id), self._keys.lease(run_id)],
                    args=[
                        record.sequence,
                        self.max_events_per_run,
                        record.type,
                        record.data,
                        status.value,
                        datetime.now(UTC).isoformat(),
                        json.dumps(output) if output is not None else "",
                        json.dumps(error) if error is not None else "",
                        self.stream_ttl_seconds,
                    ],
                )
            outcome = [text(item) for item in result]
            if outcome[0] == "retry":
                continue
            if outcome[0] == "missing":
                raise RunNotFoundError(run_id)
            if outcome[0] == "finished":
                raise RunFinishedError(run_id, outcome[1])
            tail = self._tails.get(run_id)
            if tail is not None:
                tail.add_local([record])
            with self._errors("finishing a run"):
                await self._index.touch(run_id, running=False)
            run = await self.get_run(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            return run, record

    async def _range(self, run_id: str, after: int) -> list[EventRecord]:
        with self._errors("reading events"):
            # Bounded: a reader far behind gets the log in slices, not all in one reply.
            entries = await self._client.xrange(
                self._keys.log(run_id), min=f"{after + 1}-0", count=_RANGE
            )
        return decode_entries(entries)

    async def read(
        self, run_id: str, after: int, timeout: float | None = None
    ) -> tuple[list[EventRecord], bool]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            tail = self._tails.get(run_id)
            records = tail.cached_after(after) if tail is not None else []
            if records:
                return records, records[-1].terminal
            if tail is not None and tail.following(after):
                # Caught up with this process's one blocking read: wait for its next one.
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return [], False
                await self._wait_for_more(run_id, after, remaining)
                continue
            records = await self._range(run_id, after)
            if tail is not None:
                tail.keep_earlier(records)
            if not records:
                # The log and the state are read apart: judge by the state, then re-read.
                with self._errors("reading a run"):
                    fields = await self._client.hmget(self._keys.state(run_id), ["status", "next"])
                if fields[0] is None:
                    raise RunNotFoundError(run_id)
                next_sequence = int(fields[1])
                if after + 1 < next_sequence:
                    records = await self._range(run_id, after)
                    if not records:  # retention passed them all
                        first = await self._first_sequence(run_id, next_sequence)
                        raise EventsExpiredError(run_id, after + 1, first)
                elif RunStatus(text(fields[0])).terminal:
                    return [], True
            if records:
                if records[0].sequence != after + 1:
                    raise EventsExpiredError(run_id, after + 1, records[0].sequence)
                return records, records[-1].terminal
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return [], False
            await self._wait_for_more(run_id, after, remaining)

    async def _first_sequence(self, run_id: str, next_sequence: int) -> int:
        with self._errors("reading events"):
            entries = await self._client.xrange(self._keys.log(run_id), count=1)
        return sequence_of(entries[0][0]) if entries else next_sequence

    async def _wait_for_more(self, run_id: str, after: int, timeout: float | None) -> None:
        tail = self._tails.get(run_id)
        if tail is None:
            tail = self._tails[run_id] = Tail(f"{after}-1" if after >= 0 else "0-0")
        tail.waiters += 1
        if tail.task is None or tail.task.done():
            tail.task = asyncio.create_task(self._follow(run_id, tail))
        try:
            await wait_set(tail.changed, timeout)
        finally:
            tail.waiters -= 1

    async def _follow(self, run_id: str, tail: Tail) -> None:
        """The one blocking read of this run's log in this process."""
        try:
            await tail.follow(self._blocking, self._keys.log(run_id), self._block_ms)
        finally:
            if self._tails.get(run_id) is tail and tail.waiters == 0:
                del self._tails[run_id]

    # --- leases: is the instance running a run still alive? -----------------------------

    async def renew_lease(self, run_id: str, holder: str, ttl_ms: int) -> bool:
        """Claim or extend the lease of a run; False when another holder has it."""
        keys = [self._keys.lease(run_id), self._keys.state(run_id), self._keys.log(run_id)]
        with self._errors("renewing a lease"):
            held = bool(
                await self._scripts["renew"](
                    keys=keys, args=[holder, ttl_ms, self.stream_ttl_seconds]
                )
            )
            if held:
                await self._index.keep_running(run_id)
        return held

    async def begin_attempt(self, run_id: str, holder: str, ttl_ms: int) -> tuple[int, int]:
        """A worker takes over a RUNNING run (its worker died): the run's next attempt
        number and the next sequence of its log; the lease is `holder`'s from now on."""
        keys = [self._keys.state(run_id), self._keys.lease(run_id)]
        with self._errors("starting a run's next attempt"):
            result = await self._scripts["attempt"](
                keys=keys, args=[holder, ttl_ms, self.stream_ttl_seconds]
            )
        outcome = [text(item) for item in result]
        if outcome[0] == "missing":
            raise RunNotFoundError(run_id)
        if outcome[0] == "finished":
            raise RunFinishedError(run_id, outcome[1])
        return int(outcome[1]), int(outcome[2])

    async def mark_queued(self, run_id: str) -> None:
        """The run goes through the queue: its workers, not the orphan sweep, decide what
        becomes of it when its worker dies."""
        with self._errors("queueing a run"):
            await self._client.hset(self._keys.state(run_id), "queued", 1)

    def run_queue(self, consumer: str) -> RedisRunQueue:
        """The queue of background runs every instance on this Redis shares, read as
        `consumer` (one per process)."""
        return RedisRunQueue(self._client, self._blocking, self._keys, consumer, self.url)

    async def orphaned_runs(self) -> list[str]:
        """RUNNING runs whose lease has lapsed: their instance died."""
        with self._errors("looking for orphaned runs"):
            return await self._index.orphans()

    async def close(self) -> None:
        for tail in list(self._tails.values()):
            if tail.task is not None:
                tail.task.cancel()
            tail.notify()
        self._tails.clear()
        await self._connections.close()
