"""The WebSocket protocol `serve` runs.

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
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from ..asgi_extensions import SEND_TEXTS
from .transports import CoalescingTransport

__all__ = ["PONG_BACKLOG_BYTES", "CoalescingWebSocketProtocol"]


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
