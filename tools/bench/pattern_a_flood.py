"""Pattern A flood: one stream of N tokens from a sync agent, ours vs a plain Starlette
stream of the same bytes, both under uvicorn on loopback, in one run.

    hatch run python tools/bench/pattern_a_flood.py [--tokens 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent / "flood"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server on port {port} did not start: {command}")


def measure(port: int, tokens: int) -> float:
    """Events per second seen by the client for one stream."""
    started = time.perf_counter()
    with httpx.stream(
        "POST", f"http://127.0.0.1:{port}/invoke/stream", json={"tokens": tokens}, timeout=120
    ) as response:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
    received = body.count(b"event: ")
    elapsed = time.perf_counter() - started
    if received < tokens + 2:
        raise RuntimeError(f"client saw {received} events, expected {tokens + 2}")
    return (tokens + 2) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    servers = {
        "dockrion": [
            sys.executable,
            "-m",
            "dockrion_runtime",
            "serve",
            "Dockfile.yaml",
            "--log-level",
            "warning",
            "--port",
        ],
        "baseline": [
            sys.executable,
            "-m",
            "uvicorn",
            "baseline:app",
            "--log-level",
            "warning",
            "--host",
            "127.0.0.1",
            "--port",
        ],
    }
    results: dict[str, float] = {}
    for name, command in servers.items():
        port = free_port()
        process = start([*command, str(port)], port)
        try:
            measure(port, 1000)  # warm-up
            results[name] = statistics.median(
                measure(port, args.tokens) for _ in range(args.repeat)
            )
        finally:
            process.terminate()
            process.wait(30)
    ours, base = results["dockrion"], results["baseline"]
    print(f"Pattern A flood, {args.tokens} tokens, median of {args.repeat}")
    print(f"  dockrion  {ours:12,.0f} events/s")
    print(f"  baseline  {base:12,.0f} events/s")
    print(f"  ratio     {ours / base:12.2f}")


if __name__ == "__main__":
    main()
