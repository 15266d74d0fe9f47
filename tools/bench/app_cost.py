"""What one request costs the application itself: the ASGI app called in this process, no
server and no sockets, so uvicorn's and the kernel's share (the same for every app) is left
out and the figure moves little with the machine's load.

    hatch run bench:app [--path /invoke] [--requests 5000] [--rounds 5]

Prints CPU microseconds per request (this process's CPU time, best of the rounds) for the
baseline (`suite/baseline.py`) and ours with the sync and the async agent of `suite/`, in
one run, and ours over the baseline. `--path /invoke/stream` measures a one-token stream
(request to the terminal event).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

SUITE = Path(__file__).resolve().parent / "suite"

Message = dict[str, Any]


def load(name: str) -> Any:
    if name == "raw":
        from baseline import app

        return app
    from dockrion_runtime import create_app

    return create_app(SUITE / ("Dockfile.async.yaml" if name == "async" else "Dockfile.yaml"))


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


async def one(app: Any, path: str, body: bytes) -> None:
    """One POST of `body`; the client never leaves (a stream ends by itself)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5555),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "state": {},
    }
    delivered = False
    never: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await never

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent[:2]


async def measure(name: str, path: str, requests: int, rounds: int) -> float:
    os.chdir(SUITE)  # the agents' module sits beside the Dockfiles
    app = load(name)
    body = json.dumps({"tokens": 1}).encode()
    async with lifespan(app):
        for _ in range(requests // 2):
            await one(app, path, body)
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(requests):
                await one(app, path, body)
            best = min(best, (time.process_time() - started) / requests)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", default="/invoke", choices=("/invoke", "/invoke/stream"))
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("raw", "sync", "async"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:  # one app per process: the apps do not share module state
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        sys.path.insert(0, str(SUITE))
        print(asyncio.run(measure(args.only, args.path, args.requests, args.rounds)))
        return
    import subprocess

    costs: dict[str, float] = {}
    for name in ("raw", "sync", "async"):
        command = [sys.executable, __file__, "--only", name, "--path", args.path]
        command += ["--requests", str(args.requests), "--rounds", str(args.rounds)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        costs[name] = float(output.strip().splitlines()[-1])
    print(f"POST {args.path}: CPU us per request, app only (best of {args.rounds})")
    for name, label in (("raw", "baseline"), ("sync", "ours, sync"), ("async", "ours, async")):
        ratio = "" if name == "raw" else f"   {costs[name] / costs['raw']:.2f}x the baseline"
        print(f"  {label:12} {costs[name]:8.1f}{ratio}")


if __name__ == "__main__":
    main()
