"""The agent every benchmark workload uses; the payload picks the workload.

`run` is a sync handler (runs in a worker thread, emits with `sync_emit_token`), `arun` the
same agent as an async handler (runs on the event loop, awaits `emit_token`). Payload:
`tokens` (default 1) tokens of content "tok", `pace` seconds of sleep after each (default 0).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dockrion_events import StreamContext


def run(payload: dict[str, Any], context: StreamContext | None = None) -> dict[str, Any]:
    tokens = int(payload.get("tokens", 1))
    pace = float(payload.get("pace", 0.0))
    if context is not None:
        for _ in range(tokens):
            context.sync_emit_token("tok")
            if pace:
                time.sleep(pace)
    return {"tokens": tokens}


async def arun(payload: dict[str, Any], context: StreamContext | None = None) -> dict[str, Any]:
    tokens = int(payload.get("tokens", 1))
    pace = float(payload.get("pace", 0.0))
    if context is not None:
        for _ in range(tokens):
            await context.emit_token("tok")
            if pace:
                await asyncio.sleep(pace)
    return {"tokens": tokens}
