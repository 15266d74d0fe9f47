"""Event-layer benchmark: the memory backend against a bare asyncio baseline, in one run.

    hatch run python tools/bench/events_bench.py [--events 20000] [--repeat 5]

For each workload it prints the median of several repetitions for dockrion_events and for
a baseline that does the least work one could get away with (build a dict, json.dumps it,
push the bytes into one asyncio.Queue per subscriber), and our/baseline as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from harness import redis_server

from dockrion_events import EventBackend, EventBus, InMemoryBackend, RunManager


async def ours_fanout(events: int, subscribers: int, redis_url: str | None = None) -> float:
    """Append `events` tokens (async emits) and deliver every one to each subscriber."""
    backend: EventBackend
    if redis_url is None:
        backend = InMemoryBackend(max_events_per_run=events + 10)
    else:
        from dockrion_events.backends.redis import RedisBackend

        backend = RedisBackend(
            redis_url, max_events_per_run=events + 10, key_prefix=f"bench-{time.perf_counter_ns()}"
        )
    runs = RunManager(EventBus(backend))
    run = await runs.create_run()
    context = runs.get_context(run.run_id)
    assert context is not None
    delivered = [0] * subscribers

    async def subscriber(index: int) -> None:
        async for batch in runs.bus.subscribe(run.run_id):
            delivered[index] += len(batch)

    tasks = [asyncio.create_task(subscriber(i)) for i in range(subscribers)]
    await asyncio.sleep(0)
    start = time.perf_counter()
    await runs.start_run(run.run_id)
    for i in range(events):
        await context.emit_token("tok")
        if i % 64 == 0:
            await asyncio.sleep(0)  # let subscribers run, as a network-bound agent would
    await runs.set_result(run.run_id, {})
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await backend.close()
    assert all(count == events + 2 for count in delivered), delivered
    return events * subscribers / elapsed


async def raw_xadd(events: int, redis_url: str) -> float:
    """The limit: the same JSON appended with XADD in pipelines of 64, no reads."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    key = f"bench-raw-{time.perf_counter_ns()}"
    data = json.dumps(
        {"type": "token", "content": "tok", "timestamp": datetime.now(UTC).isoformat()}
    )
    start = time.perf_counter()
    for first in range(0, events, 64):
        async with client.pipeline(transaction=False) as pipe:
            for sequence in range(first, min(first + 64, events)):
                pipe.xadd(key, {"t": "token", "d": data}, id=f"{sequence}-1")
            await pipe.execute()
    elapsed = time.perf_counter() - start
    await client.delete(key)
    await client.aclose()
    return events / elapsed


async def baseline_fanout(events: int, subscribers: int) -> float:
    queues: list[asyncio.Queue[bytes | None]] = [asyncio.Queue() for _ in range(subscribers)]
    delivered = [0] * subscribers

    async def subscriber(index: int) -> None:
        queue = queues[index]
        while await queue.get() is not None:
            delivered[index] += 1

    tasks = [asyncio.create_task(subscriber(i)) for i in range(subscribers)]
    await asyncio.sleep(0)
    start = time.perf_counter()
    for i in range(events):
        data = json.dumps(
            {
                "type": "token",
                "run_id": "r",
                "sequence": i,
                "timestamp": datetime.now(UTC).isoformat(),
                "content": "tok",
            },
            separators=(",", ":"),
        )
        frame = f"id: {i}\nevent: token\ndata: {data}\n\n".encode()
        for queue in queues:
            queue.put_nowait(frame)
        if i % 64 == 0:
            await asyncio.sleep(0)
    for queue in queues:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    assert all(count == events for count in delivered)
    return events * subscribers / elapsed


async def ours_sync_emit(events: int) -> float:
    """Tokens emitted from a worker thread, counted once all are in the log."""
    runs = RunManager(EventBus(InMemoryBackend(max_events_per_run=events + 10)))
    run = await runs.create_run()
    context = runs.get_context(run.run_id)
    assert context is not None

    def agent() -> None:
        for _ in range(events):
            context.sync_emit_token("tok")

    start = time.perf_counter()
    await asyncio.to_thread(agent)
    await context.flush()
    elapsed = time.perf_counter() - start
    assert len(await runs.bus.replay(run.run_id)) == events
    return events / elapsed


async def baseline_sync_emit(events: int) -> float:
    """One call_soon_threadsafe per event into a list: the naive hand-over."""
    loop = asyncio.get_running_loop()
    received: list[bytes] = []
    done = asyncio.Event()

    def agent() -> None:
        for i in range(events):
            data = json.dumps({"type": "token", "sequence": i, "content": "tok"})
            loop.call_soon_threadsafe(received.append, data.encode())
        loop.call_soon_threadsafe(done.set)

    start = time.perf_counter()
    thread = threading.Thread(target=agent)
    thread.start()
    await done.wait()
    elapsed = time.perf_counter() - start
    thread.join()
    assert len(received) == events
    return events / elapsed


async def peak_memory(events: int) -> tuple[float, float]:
    """Peak traced memory (MiB) for one run of `events` stored events, and bytes/event."""
    tracemalloc.start()
    runs = RunManager(EventBus(InMemoryBackend(max_events_per_run=events + 10)))
    run = await runs.create_run()
    context = runs.get_context(run.run_id)
    assert context is not None
    await runs.start_run(run.run_id)
    for _ in range(events):
        await context.emit_token("tok")
    await runs.set_result(run.run_id, {})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, peak / events


def median(repeat: int, make: Callable[[], Coroutine[Any, Any, float]]) -> float:
    return statistics.median(asyncio.run(make()) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, r = args.events, args.repeat
    rows: list[tuple[str, float, float]] = []
    for subs in (1, 10, 100):
        count = n if subs < 100 else n // 10
        ours = median(r, functools.partial(ours_fanout, count, subs))
        base = median(r, functools.partial(baseline_fanout, count, subs))
        rows.append((f"append+deliver, {subs} subscriber(s) [deliveries/s]", ours, base))
    ours = median(r, lambda: ours_sync_emit(n * 5))
    base = median(r, lambda: baseline_sync_emit(n * 5))
    rows.append(("sync emit from a worker thread [events/s]", ours, base))
    print(f"{'workload':58} {'ours':>12} {'baseline':>12} {'ratio':>7}")
    for name, ours, base in rows:
        per = 1e6 / ours
        print(f"{name:58} {ours:12,.0f} {base:12,.0f} {ours / base:7.2f}   ({per:.2f} us each)")
    mib, per_event = asyncio.run(peak_memory(100_000))
    print(f"peak traced memory, one run of 100,000 events: {mib:.1f} MiB ({per_event:.0f} B/event)")
    with redis_server() as url:
        if url is None:
            print("redis: skipped (no redis-server on this machine)")
            return
        count = max(1000, n // 4)
        print()
        print(f"Redis backend, {count} events, median of {r} (memory and raw XADD beside it)")
        print(f"{'workload':58} {'redis':>12} {'memory':>12} {'raw XADD':>12}")
        raw = median(r, functools.partial(raw_xadd, count, url))
        for subs in (1, 100):
            events = count if subs == 1 else count // 5
            redis_rate = median(r, functools.partial(ours_fanout, events, subs, url))
            memory_rate = median(r, functools.partial(ours_fanout, events, subs))
            print(
                f"{f'append+deliver, {subs} subscriber(s) [deliveries/s]':58} "
                f"{redis_rate:12,.0f} {memory_rate:12,.0f} {raw:12,.0f}"
            )
        print(
            f"(appended events/s through Redis with 1 subscriber vs raw XADD: "
            f"{median(r, functools.partial(ours_fanout, count, 1, url)) / raw:.2f})"
        )


if __name__ == "__main__":
    main()
