"""Health and readiness probes while the server is busiest: `/health` and `/ready`
latency while 500 streams start at once and 2,000 subscribers connect.

A probe (a separate process, one fresh connection per request, as an orchestrator's
probe does) asks `/health` and `/ready` in turn every 20 ms. Meanwhile this process opens
`--streams` `POST /invoke/stream` requests at once and, a moment later, `--subscribers`
`GET /runs/{id}/events` subscriptions spread over `--runs` background runs. Each stream
emits `--tokens` tokens `--pace` seconds apart (10 tokens over 3 s by default: the burst
measures setting streams up, not event throughput). The figure is
the probes' p50/p99/max during the burst, beside the same figures on an idle server, for
two probes asking at the same time: one on the API's port, one on the probe listener
(`serve --probe-port`, a thread with its own event loop that never waits for the API's).

    hatch run bench:python tools/bench/probe_latency.py
    hatch run bench:python tools/bench/probe_latency.py --streams 500 --subscribers 2000

Not a test: the numbers depend on the machine (this one has 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import free_port

SUITE = Path(__file__).resolve().parent / "suite"

PROBE = r"""
import json, socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
samples, end, paths = [], time.monotonic() + seconds, ("/health", "/ready")
while time.monotonic() < end:
    path = paths[len(samples) % 2]
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            head = f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
            sock.sendall(head.encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        ok = answer.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    samples.append((time.perf_counter() - started, ok))
    time.sleep(0.02)
print(json.dumps(samples))
"""


@contextmanager
def server(port: int, probe_port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "dockrion_runtime", "serve", "Dockfile.yaml"),
            *("--port", str(port), "--probe-port", str(probe_port), "--log-level", "warning"),
        ],
        cwd=SUITE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if asyncio.run(request(port, "GET", "/ready")).startswith(b"HTTP/1.1 200"):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(30)


async def request(port: int, method: str, path: str, body: bytes = b"") -> bytes:
    """One request on its own connection; the whole answer (streams read to their end)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    answer = await reader.read()
    writer.close()
    return answer


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(samples: list[list[float | bool]]) -> dict[str, float]:
    latencies = [float(seconds) * 1000 for seconds, _ in samples]
    return {
        "probes": len(samples),
        "failed": sum(1 for _, ok in samples if not ok),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
    }


def probe(port: int, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, str(port), str(seconds)], stdout=subprocess.PIPE, text=True
    )


async def burst(
    port: int, streams: int, subscribers: int, runs: int, tokens: int = 10, pace: float = 0.3
) -> dict[str, int]:
    # Background runs that last the whole burst, for the subscribers to join.
    run_body = json.dumps({"tokens": 2 * tokens, "pace": pace}).encode()
    created = await asyncio.gather(*(request(port, "POST", "/runs", run_body) for _ in range(runs)))
    run_ids = [json.loads(answer.split(b"\r\n\r\n", 1)[1])["run_id"] for answer in created]
    stream_body = json.dumps({"tokens": tokens, "pace": pace}).encode()
    started = [
        asyncio.ensure_future(request(port, "POST", "/invoke/stream", stream_body))
        for _ in range(streams)
    ]
    await asyncio.sleep(0.2)
    joined = [
        asyncio.ensure_future(request(port, "GET", f"/runs/{run_ids[i % runs]}/events"))
        for i in range(subscribers)
    ]
    answers = await asyncio.gather(*started, *joined, return_exceptions=True)
    complete = sum(
        1 for answer in answers if isinstance(answer, bytes) and b"event: complete" in answer
    )
    return {"streams": streams, "subscribers": subscribers, "completed": complete}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=10, help="tokens each stream emits")
    parser.add_argument("--pace", type=float, default=0.3, help="seconds between tokens")
    parser.add_argument("--seconds", type=float, default=8.0, help="probing during the burst")
    args = parser.parse_args()
    port, probe_port = free_port(), free_port()
    ports = {"api_port": port, "probe_port": probe_port}
    with server(port, probe_port):
        idle = {name: probe(number, 3.0) for name, number in ports.items()}
        idle_samples = {name: json.loads(p.communicate()[0]) for name, p in idle.items()}
        busy = {name: probe(number, args.seconds) for name, number in ports.items()}
        time.sleep(0.3)
        load = asyncio.run(
            burst(port, args.streams, args.subscribers, args.runs, args.tokens, args.pace)
        )
        busy_samples = {name: json.loads(p.communicate()[0]) for name, p in busy.items()}
    print(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "load": {**load, "tokens": args.tokens, "pace": args.pace},
                **{
                    name: {
                        "idle": summary(idle_samples[name]),
                        "burst": summary(busy_samples[name]),
                    }
                    for name in ports
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
