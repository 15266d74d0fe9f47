"""The Redis backend on a primary found through real Sentinels: the primary is killed
mid-run, the Sentinels promote the replica, and the run completes with a contiguous log
that a subscriber reads whole, with exactly one terminal event."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from dockrion_events import BackendConnectionError, EventBus, EventRecord, RunManager


def _service(sentinels: Any) -> Any:
    from dockrion_events.backends.redis_clients import SentinelService

    return SentinelService(
        sentinels.SERVICE,
        tuple(("127.0.0.1", port) for port in sentinels.sentinel_ports),
        password=sentinels.password,
    )


async def _follow(bus: EventBus, run_id: str, seconds: float) -> list[EventRecord]:
    """A subscriber that resumes from its cursor when Redis is away, as clients do."""
    records: list[EventRecord] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            async for batch in bus.subscribe(run_id, len(records)):
                records.extend(batch)
            return records
        except BackendConnectionError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"the subscriber got {len(records)} events and no end")


def test_the_primary_killed_mid_run_fails_over_and_nothing_is_lost(redis_sentinels: Any) -> None:
    from dockrion_events.backends.redis import RedisBackend

    async def scenario() -> list[EventRecord]:
        # Two backends: the producer's process and another process following the run.
        producer = RedisBackend(sentinel=_service(redis_sentinels), block_ms=200)
        reader = EventBus(RedisBackend(sentinel=_service(redis_sentinels), block_ms=200))
        runs = RunManager(EventBus(producer))
        try:
            run = await runs.create_run()
            await runs.start_run(run.run_id)
            context = runs.get_context(run.run_id)
            assert context is not None
            follower = asyncio.create_task(_follow(reader, run.run_id, 120))
            for i in range(20):
                await context.emit_token(f"before {i}")
            for _ in range(600):  # stored (bounded: 60 s)
                stored = await producer.get_run(run.run_id)
                if stored is not None and stored.last_sequence >= 20:
                    break
                await asyncio.sleep(0.1)
            # Replication is asynchronous: what the primary acknowledged reaches the replica
            # a little later. Wait for it, so the failover tested here is the one that loses
            # nothing (docs/deploy.md says what WAIT would add).
            await asyncio.to_thread(redis_sentinels.synced)
            old = await asyncio.to_thread(redis_sentinels.kill_primary)
            for i in range(20):  # no primary: the events wait in the producer's buffer
                await context.emit_token(f"during {i}")
            new = await asyncio.to_thread(redis_sentinels.wait_for_failover, old)
            assert new != old
            for i in range(20):
                await context.emit_token(f"after {i}")
            await runs.set_result(run.run_id, {"done": True})  # flushes the buffer first
            return await asyncio.wait_for(follower, 120)
        finally:
            await runs.close()
            await reader.close()

    records = asyncio.run(scenario())
    assert [record.sequence for record in records] == list(range(62))
    assert records[0].type == "started" and records[-1].type == "complete"
    assert [record.terminal for record in records].count(True) == 1
    tokens = [f"{phase} {i}" for phase in ("before", "during", "after") for i in range(20)]
    assert [json.loads(record.data).get("content") for record in records[1:61]] == tokens
