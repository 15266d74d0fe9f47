"""Events a Redis failover lost: a primary acknowledged them and failed before its replica
had them, so the promoted replica's log is shorter than what its producer and its
subscribers saw. The loss is made for real on a real redis-server, exactly as the replica
holds it (the last entries missing, the state's `next` behind). A subscriber that got
every event before the loss still reaches exactly one terminal event (never silence); when
the producer wrote again after the loss, the run ends with an error naming the lost
events."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis.asyncio as aioredis

from dockrion_events import EventBus, EventRecord, EventsLostError, RunManager


async def _lose_last(url: str, backend: Any, run_id: str, first: int, last: int) -> None:
    """What a replica promoted before it received events `first`..`last` holds."""
    keys = backend._keys
    client = aioredis.Redis.from_url(url)
    try:
        await client.xdel(keys.log(run_id), *[f"{n}-1" for n in range(first, last + 1)])
        await client.hset(keys.state(run_id), "next", first)
    finally:
        await client.aclose()


async def _follow(bus: EventBus, run_id: str, into: list[EventRecord]) -> None:
    async for batch in bus.subscribe(run_id, 0):
        into.extend(batch)


async def _scenario(url: str, write_after_loss: bool) -> tuple[list[EventRecord], Any]:
    from dockrion_events.backends.redis import RedisBackend

    prefix = f"lost-{uuid.uuid4().hex[:8]}"
    producer = RedisBackend(url, key_prefix=prefix, block_ms=200)
    reader = EventBus(RedisBackend(url, key_prefix=prefix, block_ms=200))
    runs = RunManager(EventBus(producer))
    try:
        run = await runs.create_run()
        await runs.start_run(run.run_id)
        context = runs.get_context(run.run_id)
        assert context is not None
        seen: list[EventRecord] = []
        follower = asyncio.create_task(_follow(reader, run.run_id, seen))
        for i in range(10):
            await context.emit_token(f"t{i}")
        await context.flush()
        for _ in range(600):  # the subscriber has all 11 events (bounded: 60 s)
            if len(seen) == 11:
                break
            await asyncio.sleep(0.1)
        await _lose_last(url, producer, run.run_id, 6, 10)
        try:
            if write_after_loss:  # stored after the hole; the producer learns of the loss
                for i in range(3):
                    await context.emit_token(f"after {i}")
                await context.flush()
            await runs.set_result(run.run_id, {"done": True})
        except EventsLostError as lost:
            await runs.set_error(run.run_id, lost.message, lost.code, {"lost": [6, 10]})
        await asyncio.wait_for(follower, 60)
        state = await producer.get_run(run.run_id)
        return seen, state
    finally:
        await runs.close()
        await reader.close()
        await producer.close()


def test_a_subscriber_past_lost_events_gets_the_end_after_them(redis_server: Any) -> None:
    seen, state = asyncio.run(_scenario(redis_server.url, write_after_loss=False))
    assert [record.sequence for record in seen] == list(range(12))
    assert [record.terminal for record in seen].count(True) == 1
    assert seen[-1].type == "complete" and state.status.value == "COMPLETED"


def test_events_written_after_a_loss_end_the_run_with_an_error_naming_it(
    redis_server: Any,
) -> None:
    seen, state = asyncio.run(_scenario(redis_server.url, write_after_loss=True))
    # 0..10 before the loss, what was stored after it (the producer stops at the error)
    assert [record.sequence for record in seen] == list(range(len(seen)))
    assert len(seen) >= 13
    assert [record.terminal for record in seen].count(True) == 1
    end = seen[-1].event()
    assert (end.type, getattr(end, "code", None)) == ("error", "EVENTS_LOST")
    assert "events 6 to 10" in getattr(end, "error", "")
    assert state.status.value == "FAILED"
