"""The Redis backend on a real three-master Redis Cluster: several instances share runs whose
keys sit on different nodes; a run created on A is streamed from B and cancelled from C;
replay from the middle; the orphan sweep. (The run-log contract suite runs against the
cluster too: `redis-cluster` in conftest.py's BACKENDS.)"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from redis.crc import key_slot

from dockrion_events import EventBus, RunManager


def backends(url: str, count: int) -> list[Any]:
    from dockrion_events.backends.redis import RedisBackend

    prefix = f"cluster-{uuid.uuid4().hex[:8]}"
    return [RedisBackend(url, cluster=True, key_prefix=prefix, block_ms=200) for _ in range(count)]


def test_created_on_a_streamed_from_b_cancelled_from_c(run_async: Any, redis_cluster: Any) -> None:
    async def scenario() -> None:
        a, b, c = backends(redis_cluster.url, 3)
        on_a = RunManager(EventBus(a), lease_seconds=2, check_interval=0.1)
        on_b, on_c = RunManager(EventBus(b)), RunManager(EventBus(c))
        try:
            ids = [(await on_a.create_run()).run_id for _ in range(8)]
            # Each run's keys share one slot; the runs are spread over the nodes.
            for run_id in ids:
                keys = [a._keys.state(run_id), a._keys.log(run_id), a._keys.lease(run_id)]
                assert len({key_slot(key.encode()) for key in keys}) == 1
            nodes = {a._client.get_node_from_key(a._keys.log(run_id)).name for run_id in ids}
            assert len(nodes) > 1
            for run_id in ids:
                await on_a.start_run(run_id)

            async def follow(run_id: str) -> list[tuple[int, str]]:
                seen: list[tuple[int, str]] = []
                async for batch in on_b.bus.subscribe(run_id):
                    seen += [(record.sequence, record.type) for record in batch]
                return seen

            followers = [asyncio.create_task(follow(run_id)) for run_id in ids for _ in range(3)]
            for word in range(20):
                for run_id in ids:
                    context = on_a.get_context(run_id)
                    assert context is not None
                    await context.emit_token(f"w{word}")
                await asyncio.sleep(0.01)
            # One blocking read per run in B's process, however many subscribers it has.
            assert set(b._tails) <= set(ids)
            for run_id in ids:
                cancelled = await on_c.cancel_run(run_id, "from C")
                assert cancelled.status.value == "CANCELLED"
            logs = await asyncio.wait_for(asyncio.gather(*followers), 20)
            for index, seen in enumerate(logs):
                assert [sequence for sequence, _ in seen] == list(range(len(seen)))
                assert seen[0][1] == "started" and seen[-1][1] == "cancelled", seen
                assert len(seen) == 22 and seen == logs[index - index % 3]
            # Replay from the middle, on C.
            middle = await on_c.bus.replay(ids[0], 10)
            assert [(r.sequence, r.type) for r in middle] == logs[0][10:]
            assert json.loads(middle[-1].data)["reason"] == "from C"
        finally:
            for manager in (on_a, on_b, on_c):
                await manager.close()
            for backend in (a, b, c):
                await backend.close()

    run_async(scenario())


def test_the_orphan_sweep_on_a_cluster(run_async: Any, redis_cluster: Any) -> None:
    async def scenario() -> list[tuple[str, Any]]:
        a, b = backends(redis_cluster.url, 2)
        on_a = RunManager(EventBus(a), lease_seconds=2, check_interval=0.1)
        on_b = RunManager(EventBus(b))
        try:
            ids = [(await on_a.create_run()).run_id for _ in range(4)]
            for run_id in ids:
                await on_a.start_run(run_id)
                context = on_a.get_context(run_id)
                assert context is not None
                await context.emit_token("before the crash")
            await on_a.close()  # A stops renewing: its leases lapse as if it died
            on_b.start_reaper(interval=0.3)

            async def last_event(run_id: str) -> tuple[str, Any]:
                records = []
                async for batch in on_b.bus.subscribe(run_id):
                    records += batch
                return records[-1].type, json.loads(records[-1].data).get("code")

            return await asyncio.wait_for(
                asyncio.gather(*(last_event(run_id) for run_id in ids)), 20
            )
        finally:
            await on_b.close()
            await a.close()
            await b.close()

    assert run_async(scenario()) == [("error", "RUN_ORPHANED")] * 4


def test_more_subscribers_joining_at_once_than_connections(
    run_async: Any, redis_cluster: Any
) -> None:
    """300 subscribers joining one run together on a process whose cluster client has 100
    connections per node: commands wait for a connection instead of failing."""

    async def scenario() -> list[int]:
        (backend,) = backends(redis_cluster.url, 1)
        runs = RunManager(EventBus(backend))
        try:
            run = await runs.create_run()
            await runs.start_run(run.run_id)
            context = runs.get_context(run.run_id)
            assert context is not None
            for i in range(10):
                await context.emit_token(str(i))

            async def follow() -> int:
                count = 0
                async for batch in runs.bus.subscribe(run.run_id):
                    count += len(batch)
                return count

            followers = [asyncio.create_task(follow()) for _ in range(300)]
            await asyncio.sleep(0)
            for i in range(10, 20):
                await context.emit_token(str(i))
            await runs.set_result(run.run_id, {})
            return list(await asyncio.wait_for(asyncio.gather(*followers), 120))
        finally:
            await runs.close()
            await backend.close()

    assert run_async(scenario()) == [22] * 300  # started, 20 tokens, complete
