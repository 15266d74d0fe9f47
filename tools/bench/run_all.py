"""The benchmark suite: our runtime beside a plain Starlette baseline, in one run.

    hatch run bench:all [--repeat 3] [--quick]

Starts every server it measures on free loopback ports (same uvicorn settings), drives
them with httpx, stops them, and prints one table: each figure is the median of several
repetitions, beside the baseline's, with the ratio. Writes tools/bench/results/latest.json
and, with matplotlib, docs/performance.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from harness import free_port, redis_server

HERE = Path(__file__).resolve().parent
SUITE = HERE / "suite"
ROOT = HERE.parent.parent


@contextmanager
def server(kind: str, redis_url: str | None = None) -> Iterator[tuple[str, int]]:
    """One server process: `dockrion`, `dockrion-redis` or `baseline`; yields (url, pid)."""
    port = free_port()
    env = dict(os.environ)
    if kind == "baseline":
        command = [sys.executable, "-m", "uvicorn", "baseline:app", "--host", "127.0.0.1"]
    else:
        dockfile = "Dockfile.redis.yaml" if kind == "dockrion-redis" else "Dockfile.yaml"
        command = [sys.executable, "-m", "dockrion_runtime", "serve", dockfile]
        if redis_url:
            env["REDIS_URL"] = redis_url
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        cwd=SUITE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start") from None
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# --- workloads: each returns {metric: value} for one repetition ----------------------------


def flood(url: str, pid: int, tokens: int = 20_000) -> dict[str, float]:
    started = time.perf_counter()
    body = bytearray()
    with httpx.stream("POST", f"{url}/invoke/stream", json={"tokens": tokens}, timeout=120) as r:
        for chunk in r.iter_bytes():
            body += chunk
    elapsed = time.perf_counter() - started
    events = body.count(b"event: ")
    assert events == tokens + 2, f"flood saw {events} events"
    return {"events_per_s": events / elapsed}


def first_event(url: str, pid: int, requests: int = 200) -> dict[str, float]:
    to_token: list[float] = []
    to_complete: list[float] = []
    with httpx.Client(timeout=60) as client:
        for _ in range(requests):
            started = time.perf_counter()
            seen = b""
            token_at: float | None = None
            with client.stream("POST", f"{url}/invoke/stream", json={"tokens": 1}) as r:
                for chunk in r.iter_bytes():
                    seen += chunk
                    if token_at is None and b"event: token" in seen:
                        token_at = time.perf_counter() - started
            to_complete.append(time.perf_counter() - started)
            assert token_at is not None and b"event: complete" in seen
            to_token.append(token_at)
    return {
        "token_p50_ms": 1000 * statistics.median(to_token),
        "token_p99_ms": 1000 * statistics.quantiles(to_token, n=100)[98],
        "complete_p50_ms": 1000 * statistics.median(to_complete),
        "complete_p99_ms": 1000 * statistics.quantiles(to_complete, n=100)[98],
    }


def fanout(url: str, pid: int, tokens: int = 2000, subscribers: int = 100) -> dict[str, float]:
    async def scenario() -> dict[str, float]:
        limits = httpx.Limits(max_connections=subscribers + 10)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            created = await client.post(f"{url}/runs", json={"tokens": tokens, "pace": 0.001})
            run_id = created.json()["run_id"]
            rng = random.Random(7)
            started = time.perf_counter()

            async def subscriber() -> list[int]:
                await asyncio.sleep(rng.random() * tokens * 0.001)
                body = bytearray()
                async with client.stream("GET", f"{url}/runs/{run_id}/events") as r:
                    async for chunk in r.aiter_bytes():
                        body += chunk
                return [int(line[4:]) for line in body.split(b"\n") if line.startswith(b"id: ")]

            results = await asyncio.gather(*(subscriber() for _ in range(subscribers)))
            elapsed = time.perf_counter() - started
        complete = all(ids == list(range(tokens + 2)) for ids in results)
        delivered = sum(len(ids) for ids in results)
        return {"delivered_per_s": delivered / elapsed, "all_complete": float(complete)}

    return asyncio.run(scenario())


def concurrency(url: str, pid: int, streams: int = 300, idle_kib: int = 0) -> dict[str, float]:
    before = idle_kib or rss_kib(pid)  # RSS of the idle server, before any warm-up
    peak = rss_kib(pid)
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()

    async def scenario() -> tuple[int, float]:
        limits = httpx.Limits(max_connections=streams + 10)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:

            async def one() -> bool:
                body = bytearray()
                async with client.stream(
                    "POST", f"{url}/invoke/stream", json={"tokens": 10, "pace": 0.1}
                ) as r:
                    async for chunk in r.aiter_bytes():
                        body += chunk
                return body.count(b"event: token") == 10 and b"event: complete" in body

            started = time.perf_counter()
            results = await asyncio.gather(*(one() for _ in range(streams)))
            return sum(results), time.perf_counter() - started

    try:
        ok, wall = asyncio.run(scenario())
    finally:
        sampling = False
        sampler.join()
    return {
        "succeeded": float(ok),
        "wall_s": wall,
        "peak_rss_mib": peak / 1024,
        "rss_per_stream_kib": (peak - before) / streams,
    }


def invoke(url: str, pid: int, requests: int = 2000, parallel: int = 20) -> dict[str, float]:
    async def scenario() -> float:
        async with httpx.AsyncClient(timeout=60) as client:
            queue = list(range(requests))

            async def worker() -> None:
                while queue:
                    queue.pop()
                    response = await client.post(f"{url}/invoke", json={"tokens": 1})
                    assert response.status_code == 200

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(parallel)))
            return requests / (time.perf_counter() - started)

    return {"requests_per_s": asyncio.run(scenario())}


# --- the run -----------------------------------------------------------------------------

WORKLOADS: dict[str, tuple[Callable[..., dict[str, float]], str, bool]] = {
    # name: (function, headline metric, higher is better)
    "flood": (flood, "events_per_s", True),
    "first event": (first_event, "token_p50_ms", False),
    "fan-out": (fanout, "delivered_per_s", True),
    "concurrency": (concurrency, "wall_s", False),
    "invoke": (invoke, "requests_per_s", True),
}


def measure(kind: str, name: str, repeat: int, redis_url: str | None) -> dict[str, float]:
    function = WORKLOADS[name][0]
    runs: list[dict[str, float]] = []
    with server(kind, redis_url) as (url, pid):
        extra = {"idle_kib": rss_kib(pid)} if function is concurrency else {}
        function(url, pid, **extra)  # warm-up
        for _ in range(repeat):
            runs.append(function(url, pid, **extra))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repetition, no Redis")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    results: dict[str, Any] = {"repeat": repeat, "workloads": {}}
    plan = [(name, "dockrion") for name in WORKLOADS]
    with redis_server() as redis_url:
        if redis_url and not args.quick:
            plan += [("flood", "dockrion-redis"), ("fan-out", "dockrion-redis")]
        for name, kind in plan:
            label = name if kind == "dockrion" else f"{name} (redis)"
            ours = measure(kind, name, repeat, redis_url)
            base = measure("baseline", name, repeat, None)
            results["workloads"][label] = {"ours": ours, "baseline": base}
            headline, higher = WORKLOADS[name][1], WORKLOADS[name][2]
            ratio = ours[headline] / base[headline] if higher else base[headline] / ours[headline]
            results["workloads"][label]["ratio"] = ratio
            print(
                f"{label:22} {headline:18} ours {ours[headline]:12,.2f}  baseline "
                f"{base[headline]:12,.2f}  ratio {ratio:5.2f}",
                flush=True,
            )
            for key in ours:
                if key != headline:
                    print(f"{'':22} {key:18} ours {ours[key]:12,.2f}  baseline {base[key]:12,.2f}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results)


def chart(results: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no chart)")
        return
    labels = list(results["workloads"])
    ratios = [results["workloads"][label]["ratio"] for label in labels]
    figure, axis = plt.subplots(figsize=(8, 3.5))
    axis.barh(labels, ratios, color=["#2b8a3e" if r >= 1 else "#c92a2a" for r in ratios])
    axis.axvline(1.0, color="black", linewidth=1)
    axis.set_xlabel("dockrion / baseline (higher is better; 1.0 = the plain Starlette limit)")
    axis.invert_yaxis()
    figure.tight_layout()
    target = ROOT / "docs" / "performance.png"
    figure.savefig(target, dpi=120)
    print(f"chart: {target}")


if __name__ == "__main__":
    main()
