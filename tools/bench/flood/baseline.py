"""Baseline: plain Starlette streaming the same SSE bytes from an async generator that does
no other work (one write per event). The practical limit of this stack."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route


async def invoke_stream(request: Request) -> StreamingResponse:
    body = await request.json()
    count = int(body.get("tokens", 20_000))

    async def frames() -> AsyncIterator[bytes]:
        for sequence in range(count + 2):
            kind = "started" if sequence == 0 else "complete" if sequence == count + 1 else "token"
            data = json.dumps(
                {
                    "id": "evt-000000000000",
                    "type": kind,
                    "run_id": "00000000-0000-0000-0000-000000000000",
                    "sequence": sequence,
                    "timestamp": datetime.now(UTC).isoformat(),
                    "content": "tok",
                    "finish_reason": None,
                },
                separators=(",", ":"),
            )
            yield f"id: {sequence}\nevent: {kind}\ndata: {data}\n\n".encode()

    return StreamingResponse(frames(), media_type="text/event-stream")


app = Starlette(routes=[Route("/invoke/stream", invoke_stream, methods=["POST"])])
