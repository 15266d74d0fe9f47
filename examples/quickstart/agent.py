"""The quick-start agent: answers by echoing the query, streaming one token per word."""

from __future__ import annotations

import time
from typing import Any

from dockrion_events import StreamContext


def handle(payload: dict[str, Any], context: StreamContext | None = None) -> dict[str, Any]:
    words = str(payload["query"]).split() or ["(nothing)"]
    delay = float(payload.get("delay", 0.05))
    for index, word in enumerate(words):
        if context is not None:
            context.sync_emit_token(word if index == 0 else f" {word}")
            context.sync_emit_progress("echo", (index + 1) / len(words))
        time.sleep(delay)
    return {"answer": " ".join(words), "words": len(words)}
