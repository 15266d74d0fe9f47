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
"""

from __future__ import annotations

import asyncio
import gc
import json
from dataclasses import dataclass
from typing import Any, cast

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
from ..errors import error_body
from ..logs import AccessLog
from .transports import CoalescingTransport, HeadHoldingTransport

__all__ = [
    "GC_THRESHOLD",
    "CoalescingWebSocketProtocol",
    "GuardedH11Protocol",
    "GuardedHttpToolsProtocol",
    "ServerOptions",
    "tune_gc",
    "uvicorn_options",
]

# Allocations (net of frees) between two young collections; CPython's default is 700.
GC_THRESHOLD = 50_000


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


def _raw_response(status: int, reason: str, message: str, code: str) -> bytes:
    body = json.dumps(error_body(message, code)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


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
    (a response's head leaves with its body), and the request-head deadline, armed when a
    connection opens and before each next request on it, cancelled when a whole head has
    arrived; on expiry the client gets a JSON 408 and the connection is closed."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    connections: set[Any]
    app: Any
    _holding: HeadHoldingTransport
    _header_timer: asyncio.TimerHandle | None = None
    _cycle_before: object = None
    _head_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._holding = HeadHoldingTransport(
            cast(asyncio.Transport, transport), asyncio.get_running_loop()
        )
        super().connection_made(self._holding)  # type: ignore[misc]
        if len(self.connections) > _options.max_connections:
            self.app = _over_capacity
        self._arm_header_timer()

    def _bytes_arriving(self) -> None:
        """Before the parser sees a request's bytes: time the head of a next request, and
        hold the head of the answer until its body."""
        if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_header_timer()  # the first byte of the next request on this connection
        self._holding.hold_next = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

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
        super().handle_websocket_upgrade(*args)  # type: ignore[misc]

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.cycle is not self._cycle_before:
            return
        message = f"Request line and headers not received within {_options.header_timeout:g}s"
        self.transport.write(_raw_response(408, "Request Timeout", message, "REQUEST_TIMEOUT"))
        self.transport.close()


class GuardedH11Protocol(_HeadDeadline, H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a connection cap."""

    def data_received(self, data: bytes) -> None:
        self._bytes_arriving()
        super().data_received(data)
        if self._header_timer is not None and self.cycle is not self._cycle_before:
            self._cancel_header_timer()  # a request head arrived whole

    def send_400_response(self, msg: str) -> None:
        self._cancel_header_timer()
        too_large = len(self.conn.trailing_data[0]) > _options.max_header_bytes
        message = (
            f"The request line and headers are over the {_options.max_header_bytes} byte limit"
            if too_large
            else "Malformed HTTP request"
        )
        self.transport.write(_raw_response(400, "Bad Request", message, "BAD_REQUEST"))
        self.transport.close()


if HttpToolsProtocol is not None:

    class GuardedHttpToolsProtocol(_HeadDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with the same request-head deadline and connection
        cap as `GuardedH11Protocol`, and the request-head size limit that h11 enforces
        itself."""

        def data_received(self, data: bytes) -> None:
            self._bytes_arriving()
            waiting = self._header_timer is not None
            if waiting:
                self._head_bytes += len(data)
            super().data_received(data)
            if not waiting or self.transport.is_closing() or self._header_timer is None:
                return  # nothing to time, refused, or upgraded to a WebSocket
            if self.cycle is not self._cycle_before:
                self._cancel_header_timer()  # a request head arrived whole
            elif self._head_bytes > _options.max_header_bytes:
                self._refuse_head(
                    f"The request line and headers are over the {_options.max_header_bytes} "
                    "byte limit"
                )

        def send_400_response(self, msg: str) -> None:
            self._refuse_head("Malformed HTTP request")

        def _refuse_head(self, message: str) -> None:
            self._cancel_header_timer()
            self.transport.write(_raw_response(400, "Bad Request", message, "BAD_REQUEST"))
            self.transport.close()


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
