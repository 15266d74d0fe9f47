"""What the run queue costs a background run on Redis: one `serve` instance with the queue
(`streaming.redis.queue.enabled: true`, the default) and one without, on one redis-server,
measured in interleaved rounds:

- latency: `POST /runs` of a one-token agent, then its SSE stream read to the end, one run
  at a time (p50 and p99 of the whole round trip, ms);
- throughput: `--runs` runs created by 20 clients at once, until every one has ended
  (runs per second).

    hatch run bench:python tools/bench/queue_overhead.py [--rounds 3] [--runs 400]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx
from harness import free_port, redis_server

AGENT = """
def one(payload, context):
    context.sync_emit_token("hi")
    return {"ok": True}
"""


def _serve(folder: Path, redis_url: str, queue: bool) -> tuple[subprocess.Popen[bytes], str]:
    name = "queue" if queue else "direct"
    (folder / "overhead_agent.py").write_text(AGENT)
    dockfile = folder / f"{name}.yaml"
    dockfile.write_text(
        textwrap.dedent(f"""\
            version: "1.0"
            agent: {{name: overhead, handler: "overhead_agent:one"}}
            io_schema: {{input: {{type: object}}}}
            expose: {{host: 127.0.0.1}}
            streaming:
              backend: redis
              redis:
                url: {redis_url}
                key_prefix: o{uuid.uuid4().hex[:8]}
                queue: {{enabled: {str(queue).lower()}}}
            """)
    )
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dockrion_runtime",
            "serve",
            str(dockfile),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url
        time.sleep(0.1)
    raise RuntimeError(f"the {name} instance did not start")


async def _one(client: httpx.AsyncClient, url: str) -> float:
    started = time.perf_counter()
    created = await client.post(f"{url}/runs", json={})
    run_id = created.json()["run_id"]
    async with client.stream("GET", f"{url}/runs/{run_id}/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("event: complete"):
                break
    return (time.perf_counter() - started) * 1000


async def latency(url: str, count: int) -> tuple[float, float]:
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(10):
            await _one(client, url)  # warm-up
        times = [await _one(client, url) for _ in range(count)]
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


async def throughput(url: str, runs: int, clients: int = 20) -> float:
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as c:
        started = time.perf_counter()
        queue = list(range(runs))

        async def worker() -> None:
            while queue:
                queue.pop()
                await _one(c, url)

        await asyncio.gather(*(worker() for _ in range(clients)))
        return runs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {
        name: {"p50": [], "p99": [], "runs/s": []} for name in ("direct", "queue")
    }
    with redis_server() as redis_url, tempfile.TemporaryDirectory() as folder:
        assert redis_url is not None, "redis-server is not installed"
        servers = {
            "direct": _serve(Path(folder), redis_url, queue=False),
            "queue": _serve(Path(folder), redis_url, queue=True),
        }
        try:
            for round_ in range(args.rounds):
                order = ["direct", "queue"] if round_ % 2 == 0 else ["queue", "direct"]
                for name in order:
                    url = servers[name][1]
                    p50, p99 = asyncio.run(latency(url, args.latency_runs))
                    rate = asyncio.run(throughput(url, args.runs))
                    results[name]["p50"].append(p50)
                    results[name]["p99"].append(p99)
                    results[name]["runs/s"].append(rate)
                    print(
                        f"round {round_ + 1} {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                        f"{rate:.0f} runs/s",
                        flush=True,
                    )
        finally:
            for process, _ in servers.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
    print("\n| measure (median of rounds) | without the queue | with the queue | ratio |")
    print("|---|---:|---:|---:|")
    for measure in ("p50", "p99", "runs/s"):
        direct = statistics.median(results["direct"][measure])
        queued = statistics.median(results["queue"][measure])
        unit = " ms" if measure != "runs/s" else ""
        label = f"POST /runs to complete, {measure}" if unit else "runs/s, 20 clients"
        print(f"| {label} | {direct:.1f}{unit} | {queued:.1f}{unit} | {queued / direct:.2f} |")


if __name__ == "__main__":
    main()
