"""The HTTP server's own limits: how long a client may take to send a request head, how
long an idle connection stays open, how many connections are open at once, how large a
request head may be, how large a WebSocket message may be and how often an open
WebSocket is pinged.

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

WebSockets are served by `CoalescingWebSocketProtocol`, uvicorn's protocol on the
`websockets` library with two changes for speed, so that a batch of ready events costs
one write, as over SSE, rather than one ASGI message and one system call per event (which
made a WebSocket flood far slower than the same events over SSE):

- the frames written during one turn of the event loop leave in one write;
- the scope offers the ASGI extension `dockrion.websocket.send_texts`: the message
  `{"type": "dockrion.websocket.send_texts", "texts": [...]}` sends several text messages
  at once (the app falls back to one `websocket.send` each under other servers).

It also marks a refused handshake as answered, so that refusing one is not logged as an
error.

`GracefulServer` is the server `serve` runs in every process that serves (the only one,
each worker of `--workers N`, the reloader's child under `--reload`): uvicorn's server
with a drain on SIGTERM.

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
import gc
import json
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

import h11
import uvicorn
from uvicorn.importer import import_from_string
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools has no wheel for this platform
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

from dockrion_schema import ServerLimits

from ..asgi_extensions import SEND_TEXTS
from ..errors import error_body, status_for
from ..logs import AccessLog
from .transports import CoalescingTransport, HeadHoldingTransport

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = [
    "GC_THRESHOLD",
    "LINGER_IDLE_SECONDS",
    "LINGER_MAX_BYTES",
    "LINGER_SECONDS",
    "CoalescingWebSocketProtocol",
    "GracefulServer",
    "GuardedH11Protocol",
    "GuardedHttpToolsProtocol",
    "ServerOptions",
    "tune_gc",
    "uvicorn_options",
]

# Allocations (net of frees) between two young collections; CPython's default is 700.
GC_THRESHOLD = 50_000

# A lingering close reads what the client still sends for at most this long, this many
# bytes, and until it has sent nothing for this long (nginx: lingering_time 30 s,
# lingering_timeout 5 s).
LINGER_SECONDS = 30.0
LINGER_MAX_BYTES = 64 * 1024 * 1024
LINGER_IDLE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ServerOptions:
    header_timeout: float
    keep_alive_timeout: float
    max_connections: int
    max_header_bytes: int
    websocket_max_message_bytes: int = 16_777_216
    websocket_ping_interval: float = 20.0
    websocket_ping_timeout: float = 20.0
    websocket_compression: bool = True

    @classmethod
    def from_limits(cls, limits: ServerLimits, **overrides: Any) -> ServerOptions:
        values: dict[str, Any] = {
            "header_timeout": float(limits.header_timeout),
            "keep_alive_timeout": float(limits.keep_alive_timeout),
            "max_connections": limits.max_connections,
            "max_header_bytes": limits.max_header_bytes,
            "websocket_max_message_bytes": limits.websocket_max_message_bytes,
            "websocket_ping_interval": float(limits.websocket_ping_interval),
            "websocket_ping_timeout": float(limits.websocket_ping_timeout),
            "websocket_compression": limits.websocket_compression,
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)


# One server per process: the protocol, which uvicorn builds per connection from a class,
# reads the options of the app this process serves.
_options = ServerOptions.from_limits(ServerLimits())


def uvicorn_options(options: ServerOptions) -> dict[str, Any]:
    """The uvicorn settings for `options` (and the protocol that enforces the rest)."""
    global _options
    _options = options
    protocol = "GuardedH11Protocol" if HttpToolsProtocol is None else "GuardedHttpToolsProtocol"
    return {
        "http": f"dockrion_runtime.serve.server:{protocol}",
        "ws": "dockrion_runtime.serve.server:CoalescingWebSocketProtocol",
        "timeout_keep_alive": options.keep_alive_timeout,
        "h11_max_incomplete_event_size": options.max_header_bytes,
        "ws_max_size": options.websocket_max_message_bytes,
        "ws_ping_interval": options.websocket_ping_interval,
        "ws_ping_timeout": options.websocket_ping_timeout,
        "ws_per_message_deflate": options.websocket_compression,
    }


def tune_gc() -> None:
    """Collect cyclic garbage less often, and never scan what start-up built again.

    With CPython's defaults, a burst of connections (hundreds of streams set up at once)
    grows the heap fast enough to run a full collection about every second, each holding
    the GIL for 100-300 ms with 2,500 connections open (`tools/bench/probe_latency.py`):
    the API's loop and the probe listener's thread both stop. A young generation of
    50,000 objects (a collection of it takes milliseconds) makes full collections rare;
    `gc.freeze()` leaves the modules, the agent and the app out of every later scan.
    `serve` calls this once the agent is loaded: a process that embeds the app keeps its
    own settings."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, middle, oldest)
    gc.freeze()


class GracefulServer(uvicorn.Server):
    """uvicorn's server, which on SIGTERM stops accepting, lets running agents finish within
    `grace` seconds, cancels the rest (reason `shutdown`, so open streams end with a
    terminal event), then closes.

    Given no `runtime`, it runs in a process that uvicorn's supervisor spawned (a worker,
    the reloader's child), and `config.app` names the factory that builds this process's
    app from the Dockfile: `run` calls it before serving, so that the drain knows the
    app's runtime."""

    def __init__(
        self, config: uvicorn.Config, grace: float, runtime: Runtime | None = None
    ) -> None:
        super().__init__(config)
        self.grace = grace
        self.runtime = runtime

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        if self.runtime is None:
            app = import_from_string(self.config.app)()
            self.runtime = app.state.runtime
            self.config.app, self.config.factory = app, False
        super().run(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        if self.runtime is not None:
            await self.runtime.drain(self.grace)
        await super().shutdown(sockets)


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
            f"The server is at its limit of {_options.max_connections} open connections; "
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
        if len(self.connections) > _options.max_connections:
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
        self._header_timer = self.loop.call_later(_options.header_timeout, self._header_timeout)

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
        message = f"Request line and headers not received within {_options.header_timeout:g}s"
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
        elif len(self.conn.trailing_data[0]) > _options.max_header_bytes:
            self._refuse(
                "BAD_REQUEST",
                f"The request line and headers are over the {_options.max_header_bytes} byte limit",
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
                and self._head_bytes > _options.max_header_bytes
            ):
                self._refuse(
                    "BAD_REQUEST",
                    f"The request line and headers are over the {_options.max_header_bytes} "
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


def _text_frames(texts: list[str]) -> bytes:
    """Unfragmented, unmasked text frames (what a server sends without extensions)."""
    out: list[bytes] = []
    for text in texts:
        payload = text.encode()
        size = len(payload)
        if size < 126:
            out.append(bytes((0x81, size)))
        elif size < 65_536:
            out.append(b"\x81\x7e" + size.to_bytes(2, "big"))
        else:
            out.append(b"\x81\x7f" + size.to_bytes(8, "big"))
        out.append(payload)
    return b"".join(out)


# Bytes a WebSocket connection may hold unsent when a ping arrives: a pong is written
# whatever the flow control says, so a peer that pings and never reads is dropped here.
PONG_BACKLOG_BYTES = 1 << 20


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol writing the frames of one turn of the event loop in
    one write, and sending a list of text messages in one ASGI message (`SEND_TEXTS`).
    A ping that arrives while over `PONG_BACKLOG_BYTES` wait unsent closes the connection
    (aborted: a peer that does not read would never read a close frame either)."""

    def handle_ping(self) -> None:
        transport = self.transport
        if transport.get_write_buffer_size() > PONG_BACKLOG_BYTES:
            self.conn.data_to_send()  # the pong, never sent
            transport.abort()
            return
        super().handle_ping()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        super().connection_made(coalescing)  # type: ignore[arg-type]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The app's task is created but has not run yet: it sees the extension.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][SEND_TEXTS] = {}

    async def send(self, message: Any) -> None:
        if message["type"] != SEND_TEXTS:
            await super().send(message)
            if message["type"] == "websocket.http.response.body" and not message.get(
                "more_body", False
            ):
                # A refused handshake (401, 403, 429) is answered: without this uvicorn
                # logs "ASGI callable returned without completing handshake" at ERROR
                # for every refusal, as its wsproto protocol does not.
                self.handshake_complete = True
            return
        await self.writable.wait()
        if self.disconnected or self.conn.state is not State.OPEN:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent:
            raise RuntimeError(f"'{SEND_TEXTS}' before the handshake or after the close")
        texts: list[str] = message["texts"]
        if self.conn.extensions:  # permessage-deflate: compressed by the protocol
            for text in texts:
                self.conn.send_text(text.encode())
            self.transport.write(b"".join(self.conn.data_to_send()))
        else:
            self.transport.write(_text_frames(texts))
