"""The guarded HTTP protocols: how long a client may take to send a request head, how many
connections are open at once, how large a request head may be, what a request head is
refused for, and the lingering close.

uvicorn bounds idle time between requests (`timeout_keep_alive`) and the size of a request
head (`h11_max_incomplete_event_size`), but nothing bounds the time a client takes to send
its request head: a client sending headers a byte at a time (slowloris) holds its
connection, and a file descriptor, for ever. `GuardedH11Protocol` adds that deadline,
answers requests past the connection cap with 503, and gives the few requests that the
protocol itself refuses (408, 400, 503) the same JSON error body as every other refusal.

The HTTP parser is httptools (C, llhttp) where it is installed, which it is on every
platform with a wheel (a runtime dependency behind an environment marker): it parses a
request several times faster than h11, the pure-Python fallback. Both get the same guards:
`GuardedHttpToolsProtocol` counts the bytes of an unfinished request head itself, since
httptools has no size limit of its own. Both write through a `HeadHoldingTransport`, so a
response's head leaves in the same write as the body or events that follow it at once.

Both HTTP protocols answer what their parsers let through as nginx does: 400 for an
HTTP/1.1 request without `Host` or any request with two, 501 for a transfer coding other
than `chunked` (`gzip, chunked` would otherwise be read as plain chunked, the gzip
ignored), 505 for an HTTP version other than 1.x. And they close with a lingering close: a
connection closed while the client is still sending its request's body (an early 413 or
401, a refused head) is first half-closed, and what still arrives is read and dropped for
a bounded time and size, so that a client that writes its whole body before reading gets
the answer rather than a reset on its write.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools has no wheel for this platform
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

from ..errors import error_body, status_for
from ..logs import AccessLog
from . import options
from .transports import HeadHoldingTransport

__all__ = [
    "LINGER_IDLE_SECONDS",
    "LINGER_MAX_BYTES",
    "LINGER_SECONDS",
    "GuardedH11Protocol",
    "GuardedHttpToolsProtocol",
    "HttpToolsProtocol",
    "head_refusal",
]

# A lingering close reads what the client still sends for at most this long, this many
# bytes, and until it has sent nothing for this long (nginx: lingering_time 30 s,
# lingering_timeout 5 s).
LINGER_SECONDS = 30.0
LINGER_MAX_BYTES = 64 * 1024 * 1024
LINGER_IDLE_SECONDS = 5.0


def _raw_response(code: str, message: str) -> bytes:
    status = HTTPStatus(status_for(code))
    body = json.dumps(error_body(message, code)).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def head_refusal(
    http_version: str, headers: Iterable[tuple[bytes, bytes]]
) -> tuple[str, str] | None:
    """What a parsed request head is refused for, as (code, message), or None: an HTTP
    version other than 1.x, `Host` missing (HTTP/1.1) or repeated, a transfer coding
    other than `chunked` alone."""
    if not http_version.startswith("1."):
        return _VERSION_REFUSAL
    hosts = 0
    codings: list[bytes] = []
    for name, value in headers:
        if name == b"host":
            hosts += 1
        elif name == b"transfer-encoding":
            codings += [item.strip().lower() for item in value.split(b",") if item.strip()]
    if hosts > 1:
        return "BAD_REQUEST", f"A request carries one Host header, this one carried {hosts}"
    if hosts == 0 and http_version == "1.1":
        return "BAD_REQUEST", "An HTTP/1.1 request must carry a Host header"
    if codings and codings != [b"chunked"]:
        return _CODING_REFUSAL
    return None


_CODING_REFUSAL = (
    "NOT_IMPLEMENTED",
    "This Transfer-Encoding is not implemented: send the body with Content-Length, or "
    "with Transfer-Encoding: chunked alone",
)
_VERSION_REFUSAL = (
    "HTTP_VERSION_NOT_SUPPORTED",
    "This HTTP version is not supported: send HTTP/1.1 (or HTTP/1.0)",
)


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    body = json.dumps(
        error_body(
            f"The server is at its limit of {options.current.max_connections} open connections; "
            "try again later",
            "SERVER_BUSY",
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    if AccessLog.current is not None:  # `serve` writes the access log, not uvicorn
        AccessLog.current.request(scope, 503, None)


class _HeadDeadline:
    """What both guarded protocols share: the connection cap, the head-holding transport
    (a response's head leaves with its body), the request-head deadline, armed when a
    connection opens and before each next request on it, cancelled when a whole head has
    arrived (on expiry the client gets a JSON 408 and the connection is closed), JSON
    refusals of a request head, and the lingering close."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    timeout_keep_alive: int
    timeout_keep_alive_task: asyncio.TimerHandle | None
    timeout_keep_alive_handler: Callable[[], None]
    connections: set[Any]
    app: Any
    _raw: asyncio.Transport
    _holding: HeadHoldingTransport
    _header_timer: asyncio.TimerHandle | None = None
    _cycle_before: object = None
    _head_bytes = 0
    _refused = False
    _upgraded = False
    _linger_timer: asyncio.TimerHandle | None = None
    _linger_until = 0.0
    _linger_heard = 0.0
    _linger_left = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = cast(asyncio.Transport, transport)
        self._holding = HeadHoldingTransport(self._raw, asyncio.get_running_loop())
        self._holding.linger = self._linger_if_reading
        super().connection_made(self._holding)  # type: ignore[misc]
        if len(self.connections) > options.current.max_connections:
            self.app = _over_capacity
        self._arm_header_timer()

    def _body_arriving(self) -> bool:
        """Whether the body of the current request is still on its way."""
        raise NotImplementedError

    def _bytes_arriving(self, data: bytes) -> bool:
        """Before the parser sees a request's bytes: time the head of a next request, and
        hold the head of the answer until its body. False when the bytes are dropped (the
        connection lingers)."""
        if self._holding.lingering:
            self._drop(data)
            return False
        if self._header_timer is None and (
            self.cycle is None or (self.cycle.response_complete and not self._body_arriving())
        ):
            self._arm_header_timer()  # the first byte of the next request on this connection
        self._holding.hold_next = True
        return True

    def _bytes_parsed(self) -> None:
        """After the parser saw a request's bytes: stop timing a head that arrived whole;
        and when the body of a request answered early has now arrived whole, the
        connection is idle: the keep-alive timeout applies (uvicorn arms it only when a
        response completes)."""
        cycle = self.cycle
        if self._upgraded:
            return  # the connection belongs to the WebSocket protocol
        if self._header_timer is not None:
            if cycle is not self._cycle_before:
                self._cancel_header_timer()  # a request head arrived whole
        elif (
            cycle is not None
            and cycle.response_complete
            and not self._body_arriving()
            and self.timeout_keep_alive_task is None
            and not self.transport.is_closing()
        ):
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)  # type: ignore[misc]

    def shutdown(self) -> None:
        if self._holding.lingering:
            self._raw.close()  # the server is stopping: no more waiting for the client
            return
        super().shutdown()  # type: ignore[misc]

    def _refuse(self, code: str, message: str) -> None:
        """Answer a request head with a JSON error and close (lingering)."""
        self._cancel_header_timer()
        self._refused = True
        self.transport.write(_raw_response(code, message))
        self.transport.close()

    # --- the lingering close ---------------------------------------------------------------
    # Closing a connection with unread request bytes makes the kernel reset it: a client
    # still writing its body gets the reset on its write and, as most clients do, reports
    # that instead of reading the answer already sent (a 413, a 401). So the server
    # half-closes (the answer ends with a FIN), reads and drops the rest, then closes.

    def _linger_if_reading(self) -> bool:
        """Asked by the transport on close: linger (True) when the client may still be
        sending this request, else close at once (False)."""
        if not (self._refused or self._body_arriving()):
            return False
        self._cancel_header_timer()
        raw = self._raw
        if raw.is_closing() or not raw.can_write_eof():
            raw.close()  # TLS cannot half-close
            return True
        raw.write_eof()
        raw.resume_reading()  # reading may be paused by flow control
        now = self.loop.time()
        self._linger_until = now + LINGER_SECONDS
        self._linger_heard = now
        self._linger_left = LINGER_MAX_BYTES
        self._linger_timer = self.loop.call_later(LINGER_IDLE_SECONDS, self._linger_check)
        return True

    def _drop(self, data: bytes) -> None:
        self._linger_heard = self.loop.time()
        self._linger_left -= len(data)
        if self._linger_left <= 0:
            self._raw.close()

    def _linger_check(self) -> None:
        self._linger_timer = None
        now = self.loop.time()
        quiet_until = self._linger_heard + LINGER_IDLE_SECONDS
        if now >= self._linger_until or now >= quiet_until:
            self._raw.close()
            return
        self._linger_timer = self.loop.call_at(
            min(quiet_until, self._linger_until), self._linger_check
        )

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._cycle_before = self.cycle
        self._head_bytes = 0
        self._header_timer = self.loop.call_later(
            options.current.header_timeout, self._header_timeout
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def handle_websocket_upgrade(self, *args: Any) -> None:
        # From here the connection belongs to the WebSocket protocol: no head to wait for.
        self._cancel_header_timer()
        self._upgraded = True
        super().handle_websocket_upgrade(*args)  # type: ignore[misc]

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.cycle is not self._cycle_before:
            return
        message = (
            f"Request line and headers not received within {options.current.header_timeout:g}s"
        )
        self._holding.linger = None  # a client this slow gets no lingering close
        self.transport.write(_raw_response("REQUEST_TIMEOUT", message))
        self.transport.close()


class _HeadRefused(h11.RemoteProtocolError):
    """A request head h11 accepts and `head_refusal` does not."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, error_status_hint=status_for(code))
        self.code = code


class _CheckedH11Connection(h11.Connection):
    """h11's connection refusing, as `_HeadRefused`, the request heads `head_refusal`
    refuses and h11 lets through (an HTTP version other than 1.x)."""

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request):
            refusal = head_refusal(event.http_version.decode("ascii"), event.headers)
            if refusal is not None:
                raise _HeadRefused(*refusal)
        return event


class GuardedH11Protocol(_HeadDeadline, H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline, a connection cap, the same
    refusals of a request head as `GuardedHttpToolsProtocol` and a lingering close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size
        sizes = {} if limit is None else {"max_incomplete_event_size": limit}
        self.conn = _CheckedH11Connection(h11.SERVER, **sizes)

    def _body_arriving(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY

    def data_received(self, data: bytes) -> None:
        if not self._bytes_arriving(data):
            return
        super().data_received(data)
        self._bytes_parsed()

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this while handling h11's error: its status hint says why
        error = sys.exc_info()[1]
        if isinstance(error, _HeadRefused):
            self._refuse(error.code, str(error))
        elif isinstance(error, h11.ProtocolError) and error.error_status_hint == 501:
            self._refuse(*_CODING_REFUSAL)
        elif len(self.conn.trailing_data[0]) > options.current.max_header_bytes:
            self._refuse(
                "BAD_REQUEST",
                f"The request line and headers are over the {options.current.max_header_bytes} "
                "byte limit",
            )
        else:
            self._refuse("BAD_REQUEST", "Malformed HTTP request")


if HttpToolsProtocol is not None:

    class _RefusedHead(Exception):
        """Raised from httptools' callback to stop parsing a refused request head."""

    class GuardedHttpToolsProtocol(_HeadDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with the same request-head deadline, connection
        cap, refusals of a request head and lingering close as `GuardedH11Protocol`, and
        the request-head size limit that h11 enforces itself."""

        _message_complete = True
        _refusal: tuple[str, str] | None = None

        def _body_arriving(self) -> bool:
            return not self._message_complete

        def on_message_begin(self) -> None:
            self._message_complete = False
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            refusal = head_refusal(self.parser.get_http_version(), self.headers)
            if refusal is not None:
                self._refusal = refusal
                raise _RefusedHead  # httptools raises its callback error: send_400_response
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._message_complete = True
            super().on_message_complete()

        def data_received(self, data: bytes) -> None:
            if not self._bytes_arriving(data):
                return
            waiting = self._header_timer is not None
            if waiting:
                self._head_bytes += len(data)
            super().data_received(data)
            if self.transport.is_closing():
                return  # refused
            if (
                waiting
                and self._header_timer is not None
                and self.cycle is self._cycle_before
                and self._head_bytes > options.current.max_header_bytes
            ):
                self._refuse(
                    "BAD_REQUEST",
                    f"The request line and headers are over the {options.current.max_header_bytes} "
                    "byte limit",
                )
                return
            self._bytes_parsed()

        def send_400_response(self, msg: str) -> None:
            # uvicorn calls this while handling the parser's error: llhttp's reason says why
            reason = str(sys.exc_info()[1])
            if self._refusal is not None:
                self._refuse(*self._refusal)
            elif reason == "Invalid HTTP version":
                self._refuse(*_VERSION_REFUSAL)
            elif "Transfer-Encoding" in reason:
                self._refuse(*_CODING_REFUSAL)
            else:
                self._refuse("BAD_REQUEST", "Malformed HTTP request")
