"""Server-Sent Events responses: every ready event in one write, heartbeats while idle,
and a callback when the client goes away."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.types import Receive, Scope, Send

from dockrion_events import (
    BackendError,
    EventRecord,
    HeartbeatEvent,
    encode_comment,
    encode_frame,
)

from .pump import Ending, follow

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
        # However the stream ends, even before its head is sent (the server refused a
        # header), the subscription is closed and its subscriber place given back.
        try:
            await self._stream(receive, send)
        finally:
            try:
                close = getattr(self._batches, "aclose", None)
                if close is not None:
                    await close()
            finally:
                if self._on_close is not None:
                    on_close, self._on_close = self._on_close, None
                    on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        # The reconnection hint rides on the first frame: a block of its own would look
        # like an empty event to some clients.
        retry = f"retry: {self._retry_ms}\n".encode()

        # Plain functions returning `send`'s awaitable, not coroutines: a batch costs one
        # coroutine (the send) whatever wraps it, as when the loop wrote it itself.
        def write(body: bytes) -> Awaitable[None]:
            nonlocal retry
            if retry:
                body, retry = retry + body, b""
            return send({"type": "http.response.body", "body": body, "more_body": True})

        def write_batch(batch: list[EventRecord]) -> Awaitable[None]:
            if self._on_sent is not None:
                self._on_sent(len(batch))
            return write(b"".join(record.frame for record in batch))

        def idle(last: int) -> Awaitable[None]:
            if self._heartbeat_events:
                # Not stored, no `id:` line: resumption is never disturbed.
                beat = HeartbeatEvent(run_id=self._run_id, sequence=last)
                return write(encode_frame("heartbeat", beat.to_json()))
            return write(encode_comment("keep-alive"))

        async def departed() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            ending = await follow(
                self._batches,
                write=write_batch,
                idle=idle,
                departed=departed,
                on_disconnect=self._on_disconnect,
                timeout=self._timeout,
            )
        finally:
            # given back as soon as the subscription ends, before the last writes
            if self._on_close is not None:
                on_close, self._on_close = self._on_close, None
                on_close()
        if ending is None:
            return  # the client left
        if ending is Ending.TIMEOUT:
            # The subscription ends; the run goes on and a reconnect resumes.
            await write(encode_comment("timeout"))
        elif isinstance(ending, BackendError):
            # Not an event (no id, nothing stored): the run may be fine. The client
            # reconnects with Last-Event-ID once the backend is back.
            await write(encode_comment(f"events backend unavailable ({ending.message}); reconnect"))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
