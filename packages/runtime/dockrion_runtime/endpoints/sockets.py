"""The WebSocket views of a run's log (`expose.streaming: websocket`).

`WS /invoke/ws` (Pattern A): the client's first message is the agent's input, checked like
a `POST /invoke/stream` body; the run's events follow, one message each, on a private
one-run log; the client cancels with `{"action": "cancel"}` or by closing the socket.

`WS /runs/{run_id}/ws` (Pattern B): replays a background run's log and follows it live,
like `GET /runs/{run_id}/events`, from `?from_sequence=N` (inclusive), or `?last_event_id=N`
or a `Last-Event-ID: N` header (exclusive); the owner cancels the run with
`{"action": "cancel"}`. Leaving does not stop a background run.

A plain HTTP GET of either path (no upgrade) is answered 426 once the caller is known.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.requests import Request
from starlette.websockets import WebSocket

from dockrion_events import RunFinishedError

from ..auth import principal_of
from ..errors import RuntimeHTTPError
from ..runtime import runtime_of
from ..wire.websocket import ClientGone, accept, stream_events
from .run_access import MAX_SEQUENCE, MAX_SUBSCRIPTION_TIMEOUT, int_query, owned_run
from .run_access import resume_from as _sse_resume_from

__all__ = ["invoke_ws", "run_ws", "upgrade_required"]


async def upgrade_required(request: Request) -> None:
    raise RuntimeHTTPError(
        f"{request.url.path} is a WebSocket endpoint: connect with a WebSocket client "
        "(Upgrade: websocket)",
        "UPGRADE_REQUIRED",
    )


async def _first_message(websocket: WebSocket, timeout: float | None) -> bytes:
    """The client's first message, within the body timeout."""
    try:
        async with asyncio.timeout(timeout):
            message = await websocket.receive()
    except TimeoutError:
        raise RuntimeHTTPError(
            f"Input message not received within {timeout:g}s", "REQUEST_TIMEOUT"
        ) from None
    if message["type"] == "websocket.disconnect":
        raise ClientGone
    text = message.get("text")
    if text is not None:
        data: bytes = text.encode()
        return data
    return bytes(message.get("bytes") or b"")


async def invoke_ws(websocket: WebSocket, request: Request) -> None:
    runtime = runtime_of(request)
    agent = runtime.require_agent()
    await accept(websocket)
    payload = runtime.body.message(await _first_message(websocket, runtime.body.timeout))
    run_id, batches, task = await runtime.start_private_run(request, agent, payload, "websocket")

    def stop() -> None:
        task.cancel()  # the supervisor then ends the log with `cancelled` and stops the agent

    async def cancel() -> None:
        stop()

    await stream_events(websocket, runtime, batches, run_id, on_disconnect=stop, on_cancel=cancel)


def _resume_from(request: Request) -> int:
    """The first sequence to send. A `Last-Event-ID: N` header (a reconnecting client that
    is not a browser, as on SSE) or `?last_event_id=N` (browsers cannot set headers on a
    WebSocket) means "I have N": resume after it. The header wins over the query, which
    wins over `?from_sequence=N` (inclusive): a client reconnecting with its first URL and
    a fresh header resumes from the header."""
    if request.headers.get("last-event-id") is not None:
        return _sse_resume_from(request)  # checked like the SSE header
    start = int_query(request, "from_sequence", 0, 0, None)
    if request.query_params.get("last_event_id") is not None:
        start = int_query(request, "last_event_id", 0, 0, MAX_SEQUENCE) + 1
    return start


async def run_ws(websocket: WebSocket, request: Request) -> None:
    run = await owned_run(request)
    runtime = runtime_of(request)
    runs = runtime.require_runs()
    start = _resume_from(request)
    timeout = int_query(
        request, "timeout", runtime.settings.default_timeout, 1, MAX_SUBSCRIPTION_TIMEOUT
    )
    # Refuses (410, with the first sequence still kept) a cursor the log no longer holds.
    await runs.bus.backend.read(run.run_id, start - 1, timeout=0)
    release = await runtime.subscriber_place(request, run.run_id)
    try:
        await accept(websocket)
        owner = run.owner == principal_of(request).id

        async def cancel() -> None:
            # a run already over has its terminal event on its way
            with contextlib.suppress(RunFinishedError):
                await runs.cancel_run(run.run_id, "User requested cancellation")

        await stream_events(
            websocket,
            runtime,
            runs.bus.subscribe(run.run_id, start, heartbeat=runtime.settings.heartbeat_interval),
            run.run_id,
            on_cancel=cancel if owner else None,
            timeout=float(timeout),
        )
    finally:
        release()
