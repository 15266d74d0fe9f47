"""The runs every process shares in Redis, apart from any one run: the index of run ids by
last activity (listing runs) and the set of RUNNING runs (finding runs whose instance died).

Both keys hash to slots of their own on a cluster, so every change here is a pipeline of
single-key commands, never a script or a transaction with a run's keys (`redis_layout.py`
has the layout and the retention rules).
"""

from __future__ import annotations

import time
from typing import Any

from ..runs import Run, RunStatus
from .redis_layout import Keys, run_from_state, text

# The most runs an owner's index keeps (the oldest leave first).
MAX_OWNED = 10_000

__all__ = ["RunIndex"]


class RunIndex:
    """The shared index and running set under one key prefix. Callers wrap each call in
    their backend's error translation."""

    def __init__(self, client: Any, keys: Keys, stream_ttl_seconds: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl = stream_ttl_seconds
        # When this process last wrote each run it holds the lease of into the index
        # (monotonic seconds): lease renewals refresh the index at most this often, and the
        # index keeps an entry this much longer than the run's own retention.
        self._indexed: dict[str, float] = {}
        self._refresh = max(1.0, stream_ttl_seconds / 4)

    async def touch(self, run_id: str, *, running: bool | None = None) -> None:
        """Mark the run active now in the index (and add it to, or drop it from, the running
        set); trim index entries older than the retention; push back the expiry of both."""
        now = time.time()
        keep = self._ttl + self._refresh
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zadd(self._keys.runs, {run_id: now})
            pipe.zremrangebyscore(self._keys.runs, "-inf", f"({now - keep}")
            pipe.expire(self._keys.runs, int(keep) + 1)
            if running is True:
                pipe.sadd(self._keys.running, run_id)
            elif running is False:
                pipe.srem(self._keys.running, run_id)
            pipe.expire(self._keys.running, int(keep) + 1)
            await pipe.execute()
        if running is False:
            self._indexed.pop(run_id, None)
        else:
            self._indexed[run_id] = time.monotonic()

    async def keep_running(self, run_id: str) -> None:
        """A lease renewal of a run started here: a long run stays in the index and the
        running set (an ended run has left `_indexed` and is not re-added)."""
        last = self._indexed.get(run_id)
        if last is None or time.monotonic() - last <= self._refresh:
            return
        if len(self._indexed) > 10_000:  # runs whose guard stopped without an end here
            stale = time.monotonic() - 2 * self._refresh
            self._indexed = {k: v for k, v in self._indexed.items() if v > stale}
        await self.touch(run_id, running=True)

    async def own(self, run: Run, created: int) -> None:
        """Add the run to its owner's index (the newest `MAX_OWNED` kept, the index
        expiring with the retention after its last run)."""
        key = self._keys.owner_runs(run.owner or "")
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {run.run_id: created})
            pipe.zremrangebyrank(key, 0, -MAX_OWNED - 1)
            pipe.expire(key, int(self._ttl + self._refresh) + 1)
            await pipe.execute()

    async def owned(
        self, owner: str, limit: int, before: tuple[int, str] | None
    ) -> list[tuple[int, Run]]:
        """The owner's runs newest first after `before`; ids of expired runs leave the
        index on the way."""
        key = self._keys.owner_runs(owner)
        found: list[tuple[int, Run]] = []
        while len(found) < limit:
            places = await newest(self._client, key, limit - len(found), before)
            if not places:
                break
            async with self._client.pipeline(transaction=False) as pipe:
                for _, run_id in places:
                    pipe.hgetall(self._keys.state(run_id))
                states = await pipe.execute()
            gone = [
                run_id for (_, run_id), fields in zip(places, states, strict=True) if not fields
            ]
            if gone:
                await self._client.zrem(key, *gone)
            found += [
                (created, run_from_state(fields))
                for (created, _), fields in zip(places, states, strict=True)
                if fields
            ]
            before = places[-1]
        return found

    async def remove(self, run_id: str) -> None:
        await self._client.zrem(self._keys.runs, run_id)
        await self._client.srem(self._keys.running, run_id)
        self._indexed.pop(run_id, None)

    async def recent(self, status: RunStatus | None, owner: str | None, limit: int) -> list[Run]:
        """The `limit` most recently active runs that match, newest first by creation;
        entries whose run has expired are dropped from the index on the way."""
        runs: list[Run] = []
        start = 0
        page = max(limit, 100)
        while len(runs) < limit:
            ids = await self._client.zrevrange(self._keys.runs, start, start + page - 1)
            if not ids:
                break
            start += page
            async with self._client.pipeline(transaction=False) as pipe:
                for run_id in ids:
                    pipe.hgetall(self._keys.state(text(run_id)))
                states = await pipe.execute()
            gone = [run_id for run_id, fields in zip(ids, states, strict=True) if not fields]
            if gone:
                await self._client.zrem(self._keys.runs, *gone)  # expired runs
            for fields in states:
                if not fields:
                    continue
                run = run_from_state(fields)
                if (status is None or run.status == status) and (
                    owner is None or run.owner == owner
                ):
                    runs.append(run)
        runs.sort(key=lambda run: run.created_at, reverse=True)
        return runs[:limit]

    async def orphans(self) -> list[str]:
        """RUNNING runs whose lease has lapsed; runs that ended or expired leave the set."""
        running = [text(run_id) for run_id in await self._client.smembers(self._keys.running)]
        if not running:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for run_id in running:
                pipe.exists(self._keys.lease(run_id))
                pipe.hget(self._keys.state(run_id), "status")
            replies = await pipe.execute()
        orphans: list[str] = []
        for index, run_id in enumerate(running):
            has_lease, status = replies[2 * index], replies[2 * index + 1]
            if status is None or RunStatus(text(status)).terminal:
                await self._client.srem(self._keys.running, run_id)
            elif not has_lease and text(status) == RunStatus.RUNNING.value:
                orphans.append(run_id)
        return orphans


async def newest(
    client: Any, key: str, limit: int, before: tuple[int, str] | None
) -> list[tuple[int, str]]:
    """Members of a sorted set scored by creation (µs), newest first (by score, then
    member, both descending), strictly after the cursor `before`; runs created in the same
    microsecond are told apart by their ids, so a page never repeats or skips one."""
    found: list[tuple[int, str]] = []
    top = str(before[0]) if before is not None else "+inf"
    offset = 0
    while len(found) < limit:
        chunk = await client.zrevrangebyscore(
            key, top, "-inf", start=offset, num=limit + 1, withscores=True
        )
        if not chunk:
            break
        offset += len(chunk)
        for member, score in chunk:
            position = (int(score), text(member))
            if before is None or position < before:
                found.append(position)
    return found[:limit]
