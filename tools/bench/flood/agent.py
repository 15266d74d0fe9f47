"""Benchmark agent: emits `payload["tokens"]` tokens as fast as a sync agent can."""

from __future__ import annotations

from typing import Any

from dockrion_events import StreamContext


def flood(payload: dict[str, Any], context: StreamContext) -> dict[str, Any]:
    count = int(payload.get("tokens", 20_000))
    for _ in range(count):
        context.sync_emit_token("tok")
    return {"tokens": count}
