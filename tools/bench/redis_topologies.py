"""Fan-out through each Redis topology, in one run: the memory backend (the reference), one
redis-server, a three-master Redis Cluster, and a primary found through three Sentinels.

    hatch run bench:topologies [--events 2000] [--runs 8] [--repeat 3]

Workloads (the event layer in this process, no HTTP): one run whose producer appends
`--events` tokens while 100 subscribers follow it live; then `--runs` such runs at once
(100 subscribers each), which a cluster spreads over its nodes by the runs' hash tags. Each
figure is the median over `--repeat` rounds of deliveries per second (events x
subscribers / wall time from the start of the runs to the last subscriber's terminal
event), with its spread (half the range, in % of the median); the ratios are against one
redis-server in the same run. Every server runs on this machine, so a cluster's three nodes
share its cores with the client.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from harness import RedisCluster, RedisSentinels, RedisServer

from dockrion_events import EventBackend, EventBus, InMemoryBackend, RunManager

SUBSCRIBERS = 100

MakeBackend = Callable[[int], EventBackend]


async def fanout(make_backend: MakeBackend, events: int, runs: int) -> float:
    """`runs` runs at once, each appending `events` tokens to 100 live subscribers."""
    backend = make_backend(events + 10)
    manager = RunManager(EventBus(backend))
    try:
        created = [await manager.create_run() for _ in range(runs)]
        delivered: dict[str, list[int]] = {run.run_id: [0] * SUBSCRIBERS for run in created}

        async def subscriber(run_id: str, index: int) -> None:
            async for batch in manager.bus.subscribe(run_id):
                delivered[run_id][index] += len(batch)

        async def produce(run_id: str) -> None:
            context = manager.get_context(run_id)
            assert context is not None
            await manager.start_run(run_id)
            for i in range(events):
                await context.emit_token("tok")
                if i % 64 == 0:
                    await asyncio.sleep(0)  # a network-bound agent yields now and then
            await manager.set_result(run_id, {})

        readers = [
            asyncio.create_task(subscriber(run.run_id, i))
            for run in created
            for i in range(SUBSCRIBERS)
        ]
        await asyncio.sleep(0)
        start = time.perf_counter()
        await asyncio.gather(*(produce(run.run_id) for run in created))
        await asyncio.gather(*readers)
        elapsed = time.perf_counter() - start
    finally:
        await manager.close()
        await backend.close()
    for counts in delivered.values():
        assert all(count == events + 2 for count in counts), counts
    return events * SUBSCRIBERS * runs / elapsed


def redis_backend(**where: object) -> MakeBackend:
    from dockrion_events.backends.redis import RedisBackend

    def make(max_events: int) -> EventBackend:
        return RedisBackend(
            max_events_per_run=max_events,
            # 100 connections everywhere (a cluster's minimum per node), so the topologies
            # differ by where the data lives, not by pool size (the default is 10).
            connection_pool_size=SUBSCRIBERS,
            key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
            **where,  # type: ignore[arg-type]
        )

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from dockrion_events.backends.redis_clients import SentinelService

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "single").mkdir()
        (root / "cluster").mkdir()
        (root / "sentinel").mkdir()
        single = RedisServer(root / "single")
        cluster = RedisCluster(root / "cluster")
        sentinels = RedisSentinels(root / "sentinel")
        try:
            single.start()
            cluster.start()
            sentinels.start()
            service = SentinelService(
                sentinels.SERVICE, tuple(("127.0.0.1", p) for p in sentinels.sentinel_ports)
            )
            targets: dict[str, MakeBackend] = {
                "memory": lambda max_events: InMemoryBackend(max_events_per_run=max_events),
                "redis (one server)": redis_backend(url=single.url),
                "redis cluster (3 masters)": redis_backend(url=cluster.url, cluster=True),
                "redis via sentinel": redis_backend(sentinel=service),
            }
            workloads = [(1, args.events), (args.runs, max(100, args.events // args.runs))]
            for runs, events in workloads:
                rates: dict[str, list[float]] = {name: [] for name in targets}
                for round_ in range(args.repeat):
                    # Alternate the order from round to round (what runs first runs cooler).
                    names = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                    for name in names:
                        rates[name].append(asyncio.run(fanout(targets[name], events, runs)))
                single_rate = statistics.median(rates["redis (one server)"])
                print(
                    f"\n{runs} run(s) x {SUBSCRIBERS} subscribers, {events} events each, "
                    f"median of {args.repeat} [deliveries/s]"
                )
                print(f"{'backend':28} {'deliveries/s':>14} {'spread':>7} {'vs one Redis':>13}")
                for name, values in rates.items():
                    rate = statistics.median(values)
                    spread = (max(values) - min(values)) / 2 / rate * 100
                    print(f"{name:28} {rate:14,.0f} {spread:6.0f}% {rate / single_rate:13.2f}")
        finally:
            sentinels.stop()
            cluster.stop()
            single.stop()


if __name__ == "__main__":
    main()
