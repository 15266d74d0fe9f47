"""The baseline: plain Starlette serving the same SSE bytes our runtime sends (each event
serialised with `json.dumps` when it is produced, one write per event, as a plain
`StreamingResponse` does), doing no other work. Run under uvicorn with uvloop and httptools:
the practical limit of this stack for each workload."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def frame(run_id: str, sequence: int, kind: str, extra: dict[str, object]) -> bytes:
    data = json.dumps(
        {
            "id": "evt-" + uuid.uuid4().hex[:12],
            "type": kind,
            "run_id": run_id,
            "sequence": sequence,
            "timestamp": datetime.now(UTC).isoformat(),
            **extra,
        },
        separators=(",", ":"),
    )
    retry = "retry: 3000\n" if sequence == 0 else ""
    return f"{retry}id: {sequence}\nevent: {kind}\ndata: {data}\n\n".encode()


def frames_for(run_id: str, tokens: int) -> list[tuple[str, dict[str, object]]]:
    started: dict[str, object] = {"agent_name": "bench", "framework": "custom"}
    token: dict[str, object] = {"content": "tok", "finish_reason": None}
    complete: dict[str, object] = {
        "output": {"tokens": tokens},
        "latency_seconds": 0.0,
        "metadata": {"agent": "bench", "framework": "custom"},
    }
    return [("started", started)] + [("token", token)] * tokens + [("complete", complete)]


async def invoke_stream(request: Request) -> StreamingResponse:
    body = await request.json()
    tokens, pace = int(body.get("tokens", 1)), float(body.get("pace", 0.0))
    run_id = str(uuid.uuid4())

    async def stream() -> AsyncIterator[bytes]:
        for sequence, (kind, extra) in enumerate(frames_for(run_id, tokens)):
            if pace and kind == "token":
                await asyncio.sleep(pace)
            yield frame(run_id, sequence, kind, extra)

    return StreamingResponse(stream(), media_type="text/event-stream")


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def invoke(request: Request) -> Response:
    body = await request.json()
    return JSONResponse(
        {
            "success": True,
            "output": {"tokens": int(body.get("tokens", 1))},
            "metadata": {"agent": "bench", "framework": "custom", "latency_seconds": 0.0},
        }
    )


class Run:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.changed = asyncio.Event()
        self.done = False


RUNS: dict[str, Run] = {}


async def create_run(request: Request) -> Response:
    body = await request.json()
    tokens, pace = int(body.get("tokens", 1)), float(body.get("pace", 0.0))
    run_id = str(uuid.uuid4())
    run = RUNS[run_id] = Run()

    async def produce() -> None:
        for sequence, (kind, extra) in enumerate(frames_for(run_id, tokens)):
            if pace and kind == "token":
                await asyncio.sleep(pace)
            run.frames.append(frame(run_id, sequence, kind, extra))
            run.done = kind == "complete"
            changed, run.changed = run.changed, asyncio.Event()
            changed.set()

    asyncio.get_running_loop().create_task(produce())
    return JSONResponse({"run_id": run_id, "status": "ACCEPTED"}, status_code=202)


async def run_events(request: Request) -> StreamingResponse:
    run = RUNS[request.path_params["run_id"]]

    async def stream() -> AsyncIterator[bytes]:
        cursor = 0
        while True:
            if cursor < len(run.frames):
                chunk, cursor = b"".join(run.frames[cursor:]), len(run.frames)
                yield chunk
            elif run.done:
                return
            else:
                await run.changed.wait()

    return StreamingResponse(stream(), media_type="text/event-stream")


app = Starlette(
    routes=[
        Route("/health", health, methods=["GET"]),
        Route("/invoke/stream", invoke_stream, methods=["POST"]),
        Route("/invoke", invoke, methods=["POST"]),
        Route("/runs", create_run, methods=["POST"]),
        Route("/runs/{run_id}/events", run_events, methods=["GET"]),
    ]
)
