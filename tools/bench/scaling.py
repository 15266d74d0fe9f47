"""How cost grows with the work: the curves of docs/performance.md (slow: not part of
`bench:all`).

    hatch run bench:scaling [--quick]

- events per run (1k to 1M, POST /runs with a sync agent, memory backend keeping at most
  100,000 events per run): the server's RSS over its idle RSS once the run is stored, and
  the time to replay the stored log from the start;
- subscribers per run (1 to 1,000 joining one run of 1,000 tokens paced at 1 ms):
  delivered events/s, the server's CPU share, RSS per subscriber;
- concurrent streams (100 to 5,000 streams of 2 tokens 2 s apart from an async agent,
  open at once; the open-file limit raised for the client and the servers): RSS per open
  stream, ours beside the baseline (a sync agent would hold a worker thread per stream:
  `arguments.worker_threads`, 512 by default, bounds how many run at once);
- runtime instances on one Redis (1 to 3, 100 subscribers spread over them, one run of
  1,000 tokens paced at 1 ms created on the first): delivered events/s.

Writes tools/bench/results/scaling.json and docs/performance-scaling.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from client import KeepAlive, request_bytes, stream
from harness import redis_server
from run_all import (
    HERE,
    ROOT,
    Meter,
    Server,
    create_run,
    prepare_bench_process,
    rss_kib,
    server,
)

PC = time.perf_counter


async def _wait_done(srv: Server, run_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    async with KeepAlive(srv.target) as connection:
        while time.monotonic() < deadline:
            _, answer = await connection.exchange(
                request_bytes(srv.target, "GET", f"/runs/{run_id}")
            )
            if json.loads(answer)["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return
            await asyncio.sleep(0.2)
    raise TimeoutError(run_id)


def events_per_run(sizes: list[int]) -> list[dict[str, float]]:
    out = []
    for size in sizes:
        with server("retain") as srv:
            idle = rss_kib(srv.pid)

            async def scenario(
                srv: Server = srv, size: int = size, idle: int = idle
            ) -> dict[str, float]:
                run_id = await create_run(srv, {"tokens": size})
                await _wait_done(srv, run_id)
                stored = rss_kib(srv.pid)
                start = max(0, size - 99_000)  # within what the backend keeps
                started = PC()
                path = f"/runs/{run_id}/events?from_sequence={start}"
                replay = await stream(srv.target, "GET", path, timeout=300)
                replay_s = PC() - started
                assert replay.terminal == "complete" and not replay.gaps, replay
                return {
                    "events": float(size),
                    "kept": float(replay.events),
                    "rss_mib": (stored - idle) / 1024,
                    "bytes_per_kept_event": (stored - idle) * 1024 / replay.events,
                    "replay_s": replay_s,
                    "replay_events_per_s": replay.events / replay_s,
                }

            row = asyncio.run(scenario())
        print(f"events per run {size:>9,}: {row}", flush=True)
        out.append(row)
    return out


async def _fanout(
    servers: list[Server], subscribers: int, tokens: int, pace: float
) -> dict[str, float]:
    run_id = await create_run(servers[0], {"tokens": tokens, "pace": pace})
    before = [rss_kib(s.pid) for s in servers]
    peak = list(before)
    meters = [Meter(s.pid) for s in servers]
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            for index, srv in enumerate(servers):
                peak[index] = max(peak[index], rss_kib(srv.pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    sampler = asyncio.create_task(sample())
    for meter in meters:
        meter.__enter__()
    results = await asyncio.gather(
        *(
            stream(servers[i % len(servers)].target, "GET", f"/runs/{run_id}/events", timeout=300)
            for i in range(subscribers)
        )
    )
    for meter in meters:
        meter.__exit__()
    stop.set()
    await sampler
    complete = sum(r.terminal == "complete" and not r.gaps and r.tokens == tokens for r in results)
    wall = max(meter.wall for meter in meters)
    return {
        "subscribers": float(subscribers),
        "complete": float(complete),
        "delivered_per_s": sum(r.events for r in results) / wall,
        "server_cpu": sum(meter.server_cpu for meter in meters),
        "client_cpu": meters[0].client_cpu,
        "rss_per_subscriber_kib": sum(p - b for p, b in zip(peak, before, strict=True))
        / subscribers,
    }


def subscribers_per_run(counts: list[int]) -> list[dict[str, float]]:
    out = []
    for count in counts:
        with server("sync") as srv:
            asyncio.run(_fanout([srv], 2, 50, 0.001))  # warm-up
            row = asyncio.run(_fanout([srv], count, 1000, 0.001))
        print(f"subscribers {count:>5}: {row}", flush=True)
        out.append(row)
    return out


def concurrent_streams(counts: list[int]) -> list[dict[str, float]]:
    out = []
    for count in counts:
        row: dict[str, float] = {"streams": float(count)}
        for name in ("raw", "async"):
            with server(name, extra=("--max-connections", "20000")) as srv:

                async def scenario(srv: Server = srv, count: int = count) -> dict[str, float]:
                    idle = rss_kib(srv.pid)
                    body = {"tokens": 2, "pace": 2.0}
                    tasks = [
                        asyncio.create_task(stream(srv.target, "POST", "/invoke/stream", body))
                        for _ in range(count)
                    ]
                    await asyncio.sleep(1.5)  # all open, each between its two tokens
                    open_rss = rss_kib(srv.pid)
                    results = await asyncio.gather(*tasks)
                    ok = sum(r.terminal == "complete" for r in results)
                    return {
                        "ok": float(ok),
                        "rss_mib": open_rss / 1024,
                        "kib_per_stream": (open_rss - idle) / count,
                    }

                measured = asyncio.run(scenario())
            row.update({f"{name}_{key}": value for key, value in measured.items()})
        print(f"concurrent streams {count:>5}: {row}", flush=True)
        out.append(row)
    return out


def instances_on_redis(counts: list[int]) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    with redis_server() as redis_url:
        if redis_url is None:
            print("(no redis-server: instances on one Redis skipped)")
            return out
        for count in counts:
            with contextlib.ExitStack() as stack:
                servers = [
                    stack.enter_context(server("redis", redis_url=redis_url)) for _ in range(count)
                ]
                row = asyncio.run(_fanout(servers, 100, 1000, 0.001))
            row["instances"] = float(count)
            print(f"instances {count}: {row}", flush=True)
            out.append(row)
    return out


def chart(results: dict[str, Any], target: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no chart)")
        return
    figure, axes = plt.subplots(2, 2, figsize=(10, 7))
    rows = results.get("events_per_run", [])
    if rows:
        axis = axes[0][0]
        xs = [r["events"] for r in rows]
        axis.plot(xs, [r["rss_mib"] for r in rows], "o-", label="server memory (MiB)")
        axis.plot(xs, [r["replay_s"] for r in rows], "s-", label="replay from 0 (s)")
        axis.set_xscale("log")
        axis.set_title("events per run (memory backend keeps 100,000)")
        axis.legend()
    rows = results.get("subscribers_per_run", [])
    if rows:
        axis = axes[0][1]
        xs = [r["subscribers"] for r in rows]
        axis.plot(xs, [r["delivered_per_s"] / 1000 for r in rows], "o-", label="k events/s")
        axis.plot(xs, [100 * r["server_cpu"] for r in rows], "s-", label="server CPU %")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title("subscribers per run (1,000 tokens at 1 ms)")
        axis.legend()
    rows = results.get("concurrent_streams", [])
    if rows:
        axis = axes[1][0]
        xs = [r["streams"] for r in rows]
        axis.plot(xs, [r["async_rss_mib"] for r in rows], "o-", label="ours, RSS MiB")
        axis.plot(xs, [r["raw_rss_mib"] for r in rows], "s-", label="baseline, RSS MiB")
        axis.set_xscale("log")
        axis.set_title("concurrent open streams")
        axis.legend()
    rows = results.get("instances_on_redis", [])
    if rows:
        axis = axes[1][1]
        xs = [r["instances"] for r in rows]
        axis.plot(xs, [r["delivered_per_s"] / 1000 for r in rows], "o-", label="k events/s")
        axis.set_xticks(xs)
        axis.set_title("instances on one Redis (100 subscribers)")
        axis.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    print(f"chart: {target}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the small end of each curve")
    parser.add_argument("--only", help="comma-separated curves: events,subscribers,streams,redis")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scaling.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "performance-scaling.png")
    args = parser.parse_args()
    limit = prepare_bench_process()
    quick = args.quick
    streams = [100, 1000] if quick else [100, 1000, 2500, 5000]
    streams = [count for count in streams if 2 * count + 100 < limit]
    only = set(args.only.split(",")) if args.only else {"events", "subscribers", "streams", "redis"}
    results: dict[str, Any] = {"open_file_limit": limit}
    if args.out.exists():  # curves not measured this time keep their last values
        results = {**json.loads(args.out.read_text()), **results}
    if "events" in only:
        sizes = [1000, 10_000] if quick else [1000, 10_000, 100_000, 1_000_000]
        results["events_per_run"] = events_per_run(sizes)
    if "subscribers" in only:
        results["subscribers_per_run"] = subscribers_per_run(
            [1, 10] if quick else [1, 10, 100, 1000]
        )
    if "streams" in only:
        results["concurrent_streams"] = concurrent_streams(streams)
    if "redis" in only:
        results["instances_on_redis"] = instances_on_redis([1, 2] if quick else [1, 2, 3])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    chart(results, args.chart)


if __name__ == "__main__":
    main()
