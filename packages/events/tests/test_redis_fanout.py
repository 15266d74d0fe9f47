"""Redis fan-out: the subscribers of one run in one process share the process's one
blocking read; a caught-up subscriber never asks Redis for the log itself, and what a
lagging one fetched serves the next one."""

from __future__ import annotations

import asyncio
from typing import Any

from dockrion_events import EventBus, RunManager


def test_subscribers_share_one_read_and_late_joiners_share_the_replay(
    run_async: Any, redis_server: Any
) -> None:
    from dockrion_events.backends.redis import RedisBackend

    async def scenario() -> tuple[list[list[int]], int, int]:
        backend = RedisBackend(redis_server.url, key_prefix="fanout")
        bus = EventBus(backend)
        runs = RunManager(bus)
        ranges = 0
        client = backend._client
        xrange = client.xrange

        async def counting_xrange(*args: Any, **kwargs: Any) -> Any:
            nonlocal ranges
            ranges += 1
            return await xrange(*args, **kwargs)

        client.xrange = counting_xrange  # type: ignore[method-assign]
        try:
            run = await runs.create_run("fan")
            await runs.start_run(run.run_id)
            context = runs.get_context(run.run_id)
            assert context is not None

            async def subscriber(seen: list[int]) -> list[int]:
                async for batch in bus.subscribe(run.run_id):
                    seen += [record.sequence for record in batch]
                return seen

            async def until_all_saw(group: list[list[int]], sequence: int) -> None:
                for _ in range(3000):  # 30 s at most
                    if all(seen and seen[-1] >= sequence for seen in group):
                        return
                    await asyncio.sleep(0.01)
                raise AssertionError(f"not every subscriber saw event {sequence}")

            early_seen: list[list[int]] = [[] for _ in range(20)]
            early = [asyncio.create_task(subscriber(seen)) for seen in early_seen]
            first = await context.emit_token("0")
            assert first is not None
            await until_all_saw(early_seen, first.sequence)  # joined and following
            joined_early = ranges
            for index in range(1, 30):  # 29 more batches: each wakes every subscriber
                await context.emit_token(str(index))
                await asyncio.sleep(0.01)
            last = first.sequence + 29
            late_seen: list[list[int]] = [[] for _ in range(20)]
            late = [asyncio.create_task(subscriber(seen)) for seen in late_seen]
            await until_all_saw(late_seen, last)  # joined while the run goes on
            await runs.set_result(run.run_id, {"ok": True})
            seen = await asyncio.wait_for(asyncio.gather(*early, *late), 30)
            return seen, joined_early, ranges
        finally:
            await runs.close()
            await backend.close()

    seen, joined_early, ranges = run_async(scenario())
    assert all(ids == list(range(len(seen[0]))) for ids in seen)
    assert seen[0][-1] == 31  # 30 tokens, then `complete` (the run log has no `started`)
    # After joining, the early subscribers follow the shared blocking read, and the late
    # joiners replay from what it kept: a few reads in all, not one per subscriber per
    # batch (20 x 30 = 600 before) nor one per late joiner each.
    assert ranges - joined_early <= 20 + 5


def test_records_appended_here_reach_local_readers_without_a_read() -> None:
    from dockrion_events import EventRecord
    from dockrion_events.backends.redis_tail import Tail

    async def scenario() -> None:
        tail = Tail("4-1")  # a reader caught up at sequence 4
        woken = tail.changed
        tail.add_local([EventRecord(5, "token", "{}"), EventRecord(6, "token", "{}")])
        assert woken.is_set() and tail.seen == 6 and tail.position == "6-1"
        assert [r.sequence for r in tail.cached_after(4)] == [5, 6]
        tail.add_local([EventRecord(9, "token", "{}")])  # not what follows: left to the read
        assert tail.seen == 6 and [r.sequence for r in tail.cached_after(4)] == [5, 6]

    asyncio.run(scenario())
