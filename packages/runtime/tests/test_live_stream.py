"""Live streaming from an async agent that never yields to the event loop on its own: its
tokens reach the client while it runs, not when it returns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from dockrion_events import SseParser

from .conftest import agent_module

SPINNER = """
import threading
import time

seen = threading.Event()


async def spin(payload, context):
    # Awaits that never suspend (the memory backend answers at once): without live
    # flushing nothing would reach the client before this returns. The blocking sleep
    # hands the GIL to the test's client thread without yielding to the event loop, and
    # the bound is in time, not in count, so a slow machine cannot end the spin before
    # the client has had its chance to see a token.
    emitted = 0
    deadline = time.monotonic() + 60
    while not seen.is_set() and time.monotonic() < deadline:
        await context.emit_token("t")
        emitted += 1
        time.sleep(0.0002)
    return {"released": seen.is_set(), "emitted": emitted}
"""


def test_an_async_agent_emitting_in_a_tight_loop_streams_live(
    serve: Callable[..., str], tmp_path: Path
) -> None:
    url = serve("spin", module=SPINNER)
    module = agent_module(tmp_path)
    events = []
    parser = SseParser()
    with httpx.stream("POST", f"{url}/invoke/stream", json={"query": "go"}, timeout=60) as r:
        for chunk in r.iter_bytes():
            for message in parser.feed(chunk):
                events.append(message)
                if message.event == "token":
                    module.seen.set()  # only now may the agent stop
    complete = events[-1]
    assert complete.event == "complete"
    assert json.loads(complete.data)["output"]["released"] is True
