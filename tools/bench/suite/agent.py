"""The one agent every benchmark workload uses; the payload picks the workload."""

from __future__ import annotations

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
