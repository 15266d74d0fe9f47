"""Server-Sent Events responses: every ready event in one write, heartbeats while idle,
and a callback when the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from starlette.types import Receive, Scope, Send

from dockrion_events import (
    BackendError,
    EventRecord,
    HeartbeatEvent,
    encode_comment,
    encode_frame,
)

from ..deadline import deadline

__all__ = ["SSE_HEADERS", "EventStreamResponse"]

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


class EventStreamResponse:
    """An ASGI response that writes batches of stored events as they become ready."""

    def __init__(
        self,
        batches: AsyncIterator[list[EventRecord]],
        *,
        run_id: str,
        heartbeat_events: bool,
        retry_ms: int = 3000,
        on_disconnect: Callable[[], None] | None = None,
        on_close: Callable[[], None] | None = None,
        on_sent: Callable[[int], None] | None = None,
        timeout: float | None = None,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self._batches = batches
        self._run_id = run_id
        self._heartbeat_events = heartbeat_events
        self._retry_ms = retry_ms
        self._on_disconnect = on_disconnect
        self._on_close = on_close
        self._on_sent = on_sent
        self._timeout = timeout
        self._headers = SSE_HEADERS + (extra_headers or [])

    def add_headers(self, headers: dict[str, str]) -> None:
        """More headers for the response (before it starts), such as the rate limit's."""
        self._headers = self._headers + [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Plain asyncio (a watcher task, a timeout), not an anyio task group: this runs once
        # per stream, and a task group with its cancel scopes costs several times more.
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        finished = False
        gone = False
        task = asyncio.current_task()
        assert task is not None

        async def watch_disconnect() -> None:
            nonlocal gone
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break
            if not finished:
                gone = True
                if self._on_disconnect is not None:
                    self._on_disconnect()
                task.cancel()

        watcher = asyncio.ensure_future(watch_disconnect())
        try:
            try:
                ending = b""
                try:
                    async with deadline(self._timeout):
                        ending = await self._pump(send)
                except TimeoutError:
                    # The subscription ends; the run goes on and a reconnect resumes.
                    ending = encode_comment("timeout")
                if ending:
                    await send({"type": "http.response.body", "body": ending, "more_body": True})
            finally:
                finished = True
                if self._on_close is not None:
                    self._on_close()
                closing = asyncio.ensure_future(self._batches.aclose())  # type: ignore[attr-defined]
                try:
                    await asyncio.shield(closing)
                except asyncio.CancelledError:
                    await closing  # finish closing the subscription, then stop
                    raise
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone:
                raise  # cancelled from outside (shutdown): not ours to swallow
            task.uncancel()  # the client left: nothing more to send
        finally:
            watcher.cancel()

    async def _pump(self, send: Send) -> bytes:
        """Write batches until the log ends; returns a closing comment, if any."""
        # The reconnection hint rides on the first frame: a block of its own would look
        # like an empty event to some clients.
        retry = f"retry: {self._retry_ms}\n".encode()
        last = -1
        try:
            async for batch in self._batches:
                if batch:
                    last = batch[-1].sequence
                    body = b"".join(record.frame for record in batch)
                    if self._on_sent is not None:
                        self._on_sent(len(batch))
                elif self._heartbeat_events:
                    # Not stored, no `id:` line: resumption is never disturbed.
                    beat = HeartbeatEvent(run_id=self._run_id, sequence=max(last, 0))
                    body = encode_frame("heartbeat", beat.to_json())
                else:
                    body = encode_comment("keep-alive")
                if retry:
                    body, retry = retry + body, b""
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except BackendError as exc:
            # Not an event (no id, nothing stored): the run may be fine. The client
            # reconnects with Last-Event-ID once the backend is back.
            return encode_comment(f"events backend unavailable ({exc.message}); reconnect")
        return b""
